//! Any broker, through a program of the operator's: run without a shell, the target in its
//! environment (`FLEETCA_REASON`, `FLEETCA_TARGET_KIND`, `FLEETCA_TARGET_ID`, `FLEETCA_SCOPE`,
//! `FLEETCA_USERNAME`, `FLEETCA_SERIAL`, `FLEETCA_USERNAME_SUFFIX`); exit 0 is done.

use std::time::Duration;

use fleetca_storage::disconnects::Disconnect;
use futures_util::future::BoxFuture;

use crate::brokers::admin::{SessionAdmin, Sessions};

/// A program and its arguments.
pub struct CommandAdmin {
    pub argv: Vec<String>,
}

impl SessionAdmin for CommandAdmin {
    fn end<'a>(
        &'a self,
        sessions: &'a Sessions,
        d: &'a Disconnect,
        _client: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(self.run(sessions, d))
    }
}

impl CommandAdmin {
    async fn run(&self, sessions: &Sessions, d: &Disconnect) -> Result<usize, String> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err("the command is empty".into());
        };
        let mut cmd = crate::support::command(program);
        cmd.args(args)
            .env("FLEETCA_REASON", &d.action)
            .env("FLEETCA_TARGET_KIND", &d.target_kind)
            .env("FLEETCA_TARGET_ID", &d.target_id)
            .env("FLEETCA_SCOPE", sessions.scope())
            .env("FLEETCA_USERNAME", sessions.username().unwrap_or_default())
            .env("FLEETCA_CLIENT_ID", "")
            .env(
                "FLEETCA_SERIAL",
                match sessions {
                    Sessions::Certificate { serial, .. } => serial.as_str(),
                    _ => "",
                },
            )
            .env(
                "FLEETCA_USERNAME_SUFFIX",
                match sessions {
                    Sessions::Product { product_key } => format!("&{product_key}"),
                    _ => String::new(),
                },
            )
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let run = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await;
        match run {
            Ok(Ok(out)) if out.status.success() => Ok(1),
            Ok(Ok(out)) => Err(format!(
                "the disconnect command exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
            Ok(Err(e)) => Err(format!("the disconnect command could not start: {e}")),
            Err(_) => Err("the disconnect command timed out after 30 s".into()),
        }
    }
}

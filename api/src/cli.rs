//! Operator commands that work on the database directly: issuing a broker's server
//! certificate and setting a user's password when nobody can sign in.

use std::io::Read;
use std::path::Path;

use chrono::Duration;

use crate::config::{AdminCommand, Config, ServerCertArgs};
use crate::service::certificates;
use crate::service::users::check_password;
use crate::startup;

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    use std::io::Write;
    let mut f = opts.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `fleetca server-cert --dns broker.example --ip 127.0.0.1 --out DIR`.
pub async fn server_cert(config: Config, args: ServerCertArgs) -> Result<(), String> {
    if args.dns.is_empty() && args.ip.is_empty() {
        return Err("give at least one --dns NAME or --ip ADDRESS".into());
    }
    if !(1..=3650).contains(&args.days) {
        return Err("--days must be from 1 to 3650".into());
    }
    let state = startup::prepare(config).await.map_err(|e| e.to_string())?;
    let name = args.dns.first().cloned().unwrap_or_else(|| "broker".into());
    let (cert, key) =
        certificates::create_server(&state, name, &args.dns, &args.ip, Duration::days(i64::from(args.days)))
            .await
            .map_err(|e| match e.problem().errors {
                Some(errors) => format!("{errors:?}"),
                None => e.to_string(),
            })?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    write_file(&args.out.join("server.crt"), &cert.certificate_pem, false)?;
    write_file(&args.out.join("server.key"), &key, true)?;
    write_file(&args.out.join("ca.crt"), state.ca.certificate_pem(), false)?;
    println!(
        "wrote server.crt, server.key (mode 0600) and ca.crt to {} (serial {})",
        args.out.display(),
        cert.serial
    );
    Ok(())
}

/// `fleetca admin set-password USERNAME` (password from FLEETCA_NEW_PASSWORD or stdin).
pub async fn admin(config: Config, cmd: AdminCommand) -> Result<(), String> {
    match cmd {
        AdminCommand::SetPassword { username } => {
            let password = match std::env::var("FLEETCA_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| format!("reading the password from standard input: {e}"))?;
                    s.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            check_password(&password).map_err(|e| format!("the password {e}"))?;
            let state = startup::prepare(config).await.map_err(|e| e.to_string())?;
            let user = state
                .store
                .user_by_username(&username)
                .await
                .map_err(|_| format!("no user named {username:?}"))?;
            if user.is_service_account {
                return Err(format!("{username:?} is an API key; only human users have passwords"));
            }
            let hash = state.auth.hash_password(password).await.map_err(|e| e.to_string())?;
            state
                .store
                .set_user_password(user.id, Some(hash), chrono::Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            println!("password set for {username}");
            Ok(())
        }
    }
}

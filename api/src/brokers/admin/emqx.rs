//! EMQX 5's REST API: list the clients of a username (or of a pattern), kick each one.

use fleetca_storage::disconnects::Disconnect;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use crate::brokers::admin::{SessionAdmin, Sessions, json_limited};
use crate::domain::Secret;

/// EMQX's dashboard address (`http://host:18083`) and an API key with its secret.
pub struct EmqxAdmin {
    pub url: String,
    pub api_key: String,
    pub api_secret: Secret,
}

impl SessionAdmin for EmqxAdmin {
    fn end<'a>(
        &'a self,
        sessions: &'a Sessions,
        _change: &'a Disconnect,
        client: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(self.kick(sessions, client))
    }
}

impl EmqxAdmin {
    async fn kick(&self, sessions: &Sessions, client: &reqwest::Client) -> Result<usize, String> {
        let base = self.url.trim_end_matches('/');
        let search = sessions.search();
        let exact = sessions
            .username()
            .filter(|_| !matches!(sessions, Sessions::Device { .. }));
        let mut closed = 0;
        let mut page = 1u32;
        loop {
            let page_text = page.to_string();
            let filter = match &exact {
                Some(u) => ("username", u.as_str()),
                None => ("like_username", search.as_str()),
            };
            let query = serde_urlencoded::to_string([filter, ("limit", "100"), ("page", &page_text)])
                .map_err(|e| e.to_string())?;
            let response = client
                .get(format!("{base}/api/v5/clients?{query}"))
                .basic_auth(&self.api_key, Some(self.api_secret.expose()))
                .send()
                .await
                .map_err(|e| crate::support::describe_request_error(&e))?;
            if !response.status().is_success() {
                return Err(format!("listing clients answered {}", response.status()));
            }
            let body: EmqxClients = json_limited(response).await?;
            for c in &body.data {
                // EMQX does not say whether a client came over TLS: a certificate's
                // sessions are all of its common name's.
                if !sessions.matches(&c.username, matches!(sessions, Sessions::Certificate { .. })) {
                    continue;
                }
                let id = percent_encoding::utf8_percent_encode(&c.clientid, percent_encoding::NON_ALPHANUMERIC);
                let response = client
                    .delete(format!("{base}/api/v5/clients/{id}"))
                    .basic_auth(&self.api_key, Some(self.api_secret.expose()))
                    .send()
                    .await
                    .map_err(|e| crate::support::describe_request_error(&e))?;
                match response.status().as_u16() {
                    200..=299 => closed += 1,
                    404 => {}
                    status => return Err(format!("kicking a client answered {status}")),
                }
            }
            if !body.meta.hasnext.unwrap_or(false) || page >= 1000 {
                break;
            }
            page += 1;
        }
        Ok(closed)
    }
}

#[derive(Deserialize)]
struct EmqxClients {
    #[serde(default)]
    data: Vec<EmqxClient>,
    #[serde(default)]
    meta: EmqxMeta,
}

#[derive(Deserialize)]
struct EmqxClient {
    clientid: String,
    #[serde(default)]
    username: String,
}

#[derive(Deserialize, Default)]
struct EmqxMeta {
    hasnext: Option<bool>,
}

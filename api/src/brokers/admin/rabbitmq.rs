//! RabbitMQ's management HTTP API: find a user's connections, close them with a reason.

use fleetca_storage::disconnects::Disconnect;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use crate::brokers::admin::{SessionAdmin, Sessions, json_limited};
use crate::domain::Secret;

/// The management API's address (`http://host:15672`) and a user that may list and close
/// connections; only connections of `vhost` when given.
pub struct RabbitMqAdmin {
    pub url: String,
    pub username: String,
    pub password: Secret,
    pub vhost: Option<String>,
}

impl SessionAdmin for RabbitMqAdmin {
    fn end<'a>(
        &'a self,
        sessions: &'a Sessions,
        d: &'a Disconnect,
        client: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move { self.close(sessions, &format!("fleetca: {}", d.action), client).await })
    }
}

/// A connection a broker reported.
#[derive(Clone, Debug)]
struct Connection {
    /// What the broker closes it by (RabbitMQ's connection name, EMQX's client id).
    handle: String,
    username: String,
    /// `None` when the broker did not say.
    tls: Option<bool>,
    /// RabbitMQ's virtual host (empty elsewhere).
    vhost: String,
}

impl RabbitMqAdmin {
    /// Closes the matching RabbitMQ connections. A user's own listing and deletion work from
    /// RabbitMQ's connection tracking, which knows a connection at once; a connection's details
    /// (TLS or not) and its deletion by name come from the statistics database, which learns
    /// of it only seconds later. So: where every session of a username goes, or where the
    /// details are not there yet, all of the username's connections are closed at once (a
    /// password session of a certificate's name then reconnects, its password still good);
    /// otherwise the matching ones, by name.
    async fn close(&self, sessions: &Sessions, reason: &str, client: &reqwest::Client) -> Result<usize, String> {
        let base = self.url.trim_end_matches('/');
        let vhost = self.vhost.as_deref();
        let mut listed = Vec::new();
        if let Some(user) = sessions.username() {
            listed.extend(self.connections(client, Some(&user)).await?);
        }
        if matches!(sessions, Sessions::Device { .. } | Sessions::Product { .. }) {
            // Other spellings of a device's username, a product's devices: the full listing.
            for c in self.connections(client, None).await? {
                if !listed.iter().any(|l: &Connection| l.handle == c.handle) {
                    listed.push(c);
                }
            }
        }
        let listed: Vec<Connection> = listed
            .into_iter()
            .filter(|c| vhost.is_none_or(|v| c.vhost.is_empty() || c.vhost == v))
            .collect();
        let discriminate = matches!(sessions, Sessions::Certificate { .. } | Sessions::Passwords { .. });
        let mut by_name = Vec::new();
        let mut whole_users: Vec<String> = Vec::new();
        for mut c in listed {
            if discriminate && c.tls.is_none() {
                c.tls = self.is_tls(client, &c.handle).await;
            }
            let hit = match c.tls {
                Some(tls) => sessions.matches(&c.username, tls),
                None => sessions.matches(&c.username, true) || sessions.matches(&c.username, false),
            };
            if !hit {
                continue;
            }
            if (discriminate && c.tls.is_some()) || matches!(sessions, Sessions::Product { .. }) {
                by_name.push(c);
            } else if !whole_users.contains(&c.username) {
                whole_users.push(c.username);
            }
        }
        let mut closed = 0;
        for c in &by_name {
            let name = percent_encoding::utf8_percent_encode(&c.handle, percent_encoding::NON_ALPHANUMERIC);
            let status = self
                .delete(client, &format!("{base}/api/connections/{name}"), reason)
                .await?;
            match status {
                200..=299 => closed += 1,
                // Not in the statistics yet: by its user, then.
                404 if !whole_users.contains(&c.username) => whole_users.push(c.username.clone()),
                404 => {}
                status => return Err(format!("closing a connection answered {status}")),
            }
        }
        for user in &whole_users {
            let user = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC);
            let status = self
                .delete(client, &format!("{base}/api/connections/username/{user}"), reason)
                .await?;
            match status {
                200..=299 => closed += 1,
                404 => {}
                status => return Err(format!("closing a user's connections answered {status}")),
            }
        }
        Ok(closed)
    }

    async fn delete(&self, client: &reqwest::Client, url: &str, reason: &str) -> Result<u16, String> {
        let response = client
            .delete(url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .header("X-Reason", reason)
            .send()
            .await
            .map_err(|e| crate::support::describe_request_error(&e))?;
        Ok(response.status().as_u16())
    }

    /// Whether a RabbitMQ connection came over TLS, if the broker can say.
    async fn is_tls(&self, client: &reqwest::Client, name: &str) -> Option<bool> {
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let response = client
            .get(format!("{}/api/connections/{name}", self.url.trim_end_matches('/')))
            .basic_auth(&self.username, Some(self.password.expose()))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let detail: RabbitConnection = json_limited(response).await.ok()?;
        detail.ssl
    }

    /// The broker's connections (of one user, when `of_user` is given).
    async fn connections(&self, client: &reqwest::Client, of_user: Option<&str>) -> Result<Vec<Connection>, String> {
        let base = self.url.trim_end_matches('/');
        let path = match of_user {
            Some(u) => format!(
                "{base}/api/connections/username/{}",
                percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => format!("{base}/api/connections"),
        };
        let response = client
            .get(format!("{path}?columns=name,user,ssl,vhost"))
            .basic_auth(&self.username, Some(self.password.expose()))
            .send()
            .await
            .map_err(|e| crate::support::describe_request_error(&e))?;
        if !response.status().is_success() {
            return Err(format!("listing connections answered {}", response.status()));
        }
        let list: Vec<RabbitConnection> = json_limited(response).await?;
        Ok(list
            .into_iter()
            .map(|c| Connection {
                handle: c.name,
                username: c.user.unwrap_or_default(),
                tls: c.ssl,
                vhost: c.vhost.unwrap_or_default(),
            })
            .collect())
    }
}

#[derive(Deserialize)]
struct RabbitConnection {
    name: String,
    user: Option<String>,
    ssl: Option<bool>,
    vhost: Option<String>,
}

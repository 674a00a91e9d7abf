//! What every broker family sends, read once: the fields of a JSON object, a form or a query
//! string ([`Fields`], an extractor), and the auth and ACL requests go-auth, amqtt, EMQX and
//! RMQTT make of them ([`BrokerRequest`]).

use std::collections::HashMap;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::brokers::acl::Access;
use crate::brokers::decision::{AclRequest, AuthRequest};
use crate::error::ApiError;
use crate::http::extract::{is_json, read_body};

const BODY_LIMIT: usize = 64 * 1024;

/// Every field a broker sent (at most 64 KiB), by name. List it after
/// [`crate::http::extract::BrokerCaller`], so a caller that may not ask is refused before
/// its body is read.
pub struct Fields(pub HashMap<String, String>);

impl FromRequest for Fields {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move { field_map(&req, &mut payload).await.map(Fields) })
    }
}

/// go-auth's, amqtt's, EMQX's and RMQTT's fields, read from what they sent.
impl FromRequest for BrokerRequest {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fields = Fields::from_request(req, payload);
        Box::pin(async move { fields.await.map(|Fields(map)| BrokerRequest::from_fields(map)) })
    }
}

/// What brokers send (JSON, a form or a query string). Every field is optional; each
/// endpoint reads its own.
#[derive(Deserialize, ToSchema, Default, Debug)]
pub struct BrokerRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Also accepted as `client_id` or `clientId`.
    pub clientid: Option<String>,
    pub topic: Option<String>,
    /// go-auth/amqtt ACL: 1 read, 2 write, 3 read and write, 4 subscribe.
    #[schema(value_type = Option<u8>)]
    pub acc: Option<String>,
    /// EMQX 4 / RMQTT ACL: 1 subscribe, 2 publish.
    pub access: Option<String>,
    /// EMQX 5 authz: `publish` or `subscribe`.
    pub action: Option<String>,
    /// The client certificate's SHA-256 fingerprint (hex, colons optional), when the broker sends it.
    pub cert_fingerprint: Option<String>,
    /// The client certificate (PEM), when the broker sends it.
    pub cert_pem: Option<String>,
}

impl BrokerRequest {
    /// Takes the fields this API knows from what the broker sent; the client id may be
    /// `clientid`, `client_id` or `clientId`, the certificate `cert_pem`, `certificate` or
    /// `cert`, its fingerprint `cert_fingerprint` or `fingerprint`.
    pub fn from_fields(mut map: HashMap<String, String>) -> Self {
        let mut first = |keys: &[&str]| keys.iter().find_map(|k| map.remove(*k));
        Self {
            username: first(&["username"]),
            password: first(&["password"]),
            clientid: first(&["clientid", "client_id", "clientId"]),
            topic: first(&["topic"]),
            acc: first(&["acc"]),
            access: first(&["access"]),
            action: first(&["action"]),
            cert_fingerprint: first(&["cert_fingerprint", "fingerprint"]),
            cert_pem: first(&["cert_pem", "certificate", "cert"]),
        }
    }

    pub fn auth_request(self) -> AuthRequest {
        AuthRequest {
            certificate_verified_by_broker: false,
            username: self.username.unwrap_or_default(),
            password: self.password.unwrap_or_default(),
            clientid: self.clientid,
            cert_fingerprint: self.cert_fingerprint,
            cert_pem: self.cert_pem,
        }
    }

    pub fn acl_request<'a>(&'a self, access: &'a [Access]) -> Option<AclRequest<'a>> {
        Some(AclRequest {
            amqp: false,
            username: self.username.as_deref()?,
            clientid: self.clientid.as_deref(),
            topic: self.topic.as_deref()?,
            access,
        })
    }
}

/// Every field a broker sent, from a JSON object, a form or the query string.
async fn field_map<S, E>(req: &HttpRequest, payload: &mut S) -> Result<HashMap<String, String>, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let body = read_body(payload, BODY_LIMIT).await?;
    let mut map = HashMap::new();
    let parsed_json = if is_json(req) || body.first() == Some(&b'{') {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
            Ok(obj) => {
                for (k, v) in obj {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => continue,
                        other => other.to_string(),
                    };
                    map.insert(k, v);
                }
                true
            }
            Err(_) if is_json(req) => return Err(ApiError::BadRequest("The body is not a JSON object.".into())),
            Err(_) => false,
        }
    } else {
        false
    };
    if !parsed_json {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| ApiError::BadRequest("The body is neither JSON nor a form.".into()))?;
        map.extend(pairs);
    }
    // EMQX 4 / RMQTT may send the fields as a query string.
    if let Ok(query) = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string()) {
        for (k, v) in query {
            if k != "response" {
                map.entry(k).or_insert(v);
            }
        }
    }
    Ok(map)
}

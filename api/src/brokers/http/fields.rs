//! What every broker family sends, read once: the fields of a JSON object, a form or a query
//! string — every field by name for RabbitMQ ([`Fields`], an extractor), and straight into the
//! auth and ACL requests of go-auth, amqtt, EMQX and RMQTT ([`BrokerRequest`], the hot path:
//! the fields it takes, nothing else copied).

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

/// go-auth's, amqtt's, EMQX's and RMQTT's fields, read from what they sent: straight into
/// the request's fields, every other field skipped (no map of everything, no JSON values).
impl FromRequest for BrokerRequest {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let body = read_body(&mut payload, BODY_LIMIT).await?;
            let mut wire = Wire::parse(&req, &body)?;
            // EMQX 4 / RMQTT may send the fields as a query string (`response` is go-auth's
            // answer mode, not a field).
            let query = req.query_string();
            if !query.is_empty()
                && query != "response=json"
                && let Ok(extra) = serde_urlencoded::from_str::<Wire>(query)
            {
                wire.fill_from(extra);
            }
            Ok(wire.into_request())
        })
    }
}

/// A field's value as brokers send it: a string, or a number or boolean in JSON (read as its
/// text); anything else (an object, an array) reads as empty, which no rule allows.
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Scalar(String::new()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Every name a field of [`BrokerRequest`] comes under; the rest of what a broker sends is
/// skipped unread. A name sent twice keeps its last value (as a map of the fields would).
#[derive(Default, Debug)]
struct Wire {
    username: Option<Scalar>,
    password: Option<Scalar>,
    clientid: Option<Scalar>,
    client_id: Option<Scalar>,
    client_id_camel: Option<Scalar>,
    topic: Option<Scalar>,
    acc: Option<Scalar>,
    access: Option<Scalar>,
    action: Option<Scalar>,
    cert_fingerprint: Option<Scalar>,
    fingerprint: Option<Scalar>,
    cert_pem: Option<Scalar>,
    certificate: Option<Scalar>,
    cert: Option<Scalar>,
}

/// A field's name, matched without copying it.
enum Key {
    Field(fn(&mut Wire) -> &mut Option<Scalar>),
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key::Field(match v {
                    "username" => |w| &mut w.username,
                    "password" => |w| &mut w.password,
                    "clientid" => |w| &mut w.clientid,
                    "client_id" => |w| &mut w.client_id,
                    "clientId" => |w| &mut w.client_id_camel,
                    "topic" => |w| &mut w.topic,
                    "acc" => |w| &mut w.acc,
                    "access" => |w| &mut w.access,
                    "action" => |w| &mut w.action,
                    "cert_fingerprint" => |w| &mut w.cert_fingerprint,
                    "fingerprint" => |w| &mut w.fingerprint,
                    "cert_pem" => |w| &mut w.cert_pem,
                    "certificate" => |w| &mut w.certificate,
                    "cert" => |w| &mut w.cert,
                    _ => return Ok(Key::Other),
                }))
            }
        }
        d.deserialize_identifier(Visitor)
    }
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Wire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
                let mut wire = Wire::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        // A null is no value (an earlier one stays).
                        Key::Field(slot) => {
                            if let Some(value) = map.next_value::<Option<Scalar>>()? {
                                *slot(&mut wire) = Some(value);
                            }
                        }
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(wire)
            }
        }
        d.deserialize_map(Visitor)
    }
}

impl Wire {
    /// The body as JSON (an object) or a form.
    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, ApiError> {
        // Only an object: serde would also read a JSON array into the fields, by position.
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if is_json(req) || object {
            match serde_json::from_slice::<Wire>(body) {
                Ok(wire) if object => return Ok(wire),
                _ if is_json(req) => return Err(ApiError::BadRequest("The body is not a JSON object.".into())),
                _ => {}
            }
        }
        serde_urlencoded::from_bytes::<Wire>(body)
            .map_err(|_| ApiError::BadRequest("The body is neither JSON nor a form.".into()))
    }

    /// Takes from `other` each field this lacks.
    fn fill_from(&mut self, other: Wire) {
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = other.$field; } )* };
        }
        fill!(
            username,
            password,
            clientid,
            client_id,
            client_id_camel,
            topic,
            acc,
            access,
            action,
            cert_fingerprint,
            fingerprint,
            cert_pem,
            certificate,
            cert
        );
    }

    fn into_request(self) -> BrokerRequest {
        let text = |s: Option<Scalar>| s.map(|Scalar(v)| v);
        BrokerRequest {
            username: text(self.username),
            password: text(self.password),
            clientid: text(self.clientid.or(self.client_id).or(self.client_id_camel)),
            topic: text(self.topic),
            acc: text(self.acc),
            access: text(self.access),
            action: text(self.action),
            cert_fingerprint: text(self.cert_fingerprint.or(self.fingerprint)),
            cert_pem: text(self.cert_pem.or(self.certificate).or(self.cert)),
        }
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
    pub fn auth_request(self) -> AuthRequest {
        AuthRequest {
            certificate_verified_by_broker: false,
            broker_delivers_activation: false,
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

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    async fn read(req: TestRequest, body: &'static str) -> Result<BrokerRequest, ApiError> {
        let (req, mut payload) = req.set_payload(body).to_http_parts();
        BrokerRequest::from_request(&req, &mut payload).await
    }

    /// What the families send: JSON with numbers (go-auth's `acc`), the client id under each
    /// of its names, a form, fields in the query string (EMQX 4 / RMQTT) that fill what the
    /// body lacks; an object where a string belongs reads as empty, and bad JSON is a 400.
    #[actix_web::test]
    async fn broker_fields_are_read_from_json_forms_and_query_strings() {
        let json = || TestRequest::post().insert_header(("content-type", "application/json"));
        let f = read(
            json(),
            r#"{"username":"u","clientId":"c","acc":4,"topic":"t","ignored":{"deep":[1]}}"#,
        )
        .await
        .unwrap();
        assert_eq!(
            (
                f.username.as_deref(),
                f.clientid.as_deref(),
                f.acc.as_deref(),
                f.topic.as_deref()
            ),
            (Some("u"), Some("c"), Some("4"), Some("t"))
        );
        let f = read(json(), r#"{"username":{"a":1},"password":null,"client_id":"c2"}"#)
            .await
            .unwrap();
        assert_eq!(f.username.as_deref(), Some(""));
        assert_eq!(f.password, None);
        assert_eq!(f.clientid.as_deref(), Some("c2"));
        let form = TestRequest::post()
            .uri("/broker/auth?password=from-query&username=ignored")
            .insert_header(("content-type", "application/x-www-form-urlencoded"));
        let f = read(form, "username=dev%3D1&fingerprint=ab").await.unwrap();
        assert_eq!(f.username.as_deref(), Some("dev=1"), "the body wins over the query");
        assert_eq!(f.password.as_deref(), Some("from-query"));
        assert_eq!(f.cert_fingerprint.as_deref(), Some("ab"));
        assert!(read(json(), "{not json").await.is_err());
        assert!(
            read(json(), r#"["u", "p"]"#).await.is_err(),
            "an array is not an object"
        );
    }
}

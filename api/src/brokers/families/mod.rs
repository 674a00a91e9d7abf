//! One folder per broker family: how it asks (routes, request fields) and how it wants its
//! answer. The decisions are shared ([`crate::brokers::decision`]), so a family is a dialect:
//!
//! - [`go_auth`]: mosquitto-go-auth's HTTP backend and amqtt's HTTP plugins.
//! - [`emqx`]: EMQX 5's HTTP authenticator and authorizer, EMQX 4 / RMQTT auth-http.
//! - [`mosquitto`]: fleetca's own mosquitto plugin (login, ACL, the change feed).
//! - [`rabbitmq`]: RabbitMQ's `rabbitmq_auth_backend_http` (four questions of its own).
//!
//! A new family is a folder here (`mod.rs` for its questions, `http.rs` for its routes) and
//! one line in the route table (`crate::http::routes`); its handlers take
//! [`crate::http::extract::BrokerCaller`] and [`crate::brokers::http::fields::BrokerRequest`]
//! (or [`crate::brokers::http::fields::Fields`], every field by name).

pub mod emqx;
pub mod go_auth;
pub mod mosquitto;
pub mod rabbitmq;

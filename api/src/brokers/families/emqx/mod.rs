//! EMQX 5's HTTP authenticator and authorizer, and EMQX 4 / RMQTT auth-http (same shapes).
//! Their questions are the shared [`crate::brokers::decision`]'s (with the topic rules an EMQX
//! 5.8 login carries, [`crate::brokers::decision::EmqxGrant`]); the shapes are in [`http`].

pub mod http;

//! mosquitto-go-auth's HTTP backend and amqtt's HTTP plugins. Their questions are the shared
//! [`crate::brokers::decision`]'s; what is theirs is the request and answer shapes, in [`http`].

pub mod http;

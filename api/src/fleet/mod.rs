//! The devices a fleet is made of: HA1 devices ([`devices`]) and the sign-based products and
//! devices of EnOS and Alibaba Cloud IoT ([`products`]), with their routes in [`http`].
//! Credentials are sealed here and decided in `brokers`. Start with `devices.rs`.

pub mod devices;
pub mod http;
pub mod products;

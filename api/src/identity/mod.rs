//! Who calls: users and API keys ([`users`]), their tokens ([`tokens`]), the admin UI's
//! sessions ([`sessions`]) and the one argon2id pool they share ([`hashing`]); routes in
//! [`http`]. It must never import a context above it (`pki`, `fleet`, `brokers`).

pub mod hashing;
pub mod http;
pub mod sessions;
pub mod tokens;
pub mod users;

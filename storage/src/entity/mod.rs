//! sea-orm entities. Only `storage` uses them directly; other crates see the models as
//! plain structs.

pub mod audit_head;
pub mod audit_log;
pub mod authority;
pub mod certificates;
pub mod claims;
pub mod crl_state;
pub mod devices;
pub mod disconnects;
pub mod events;
pub mod product_devices;
pub mod products;
pub mod repairs;
pub mod restored_revocations;
pub mod sessions;
pub mod users;
pub mod webhook_deliveries;
pub mod webhooks;

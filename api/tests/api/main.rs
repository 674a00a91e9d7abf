//! API tests: one binary, each test on a fresh server and database.

mod certificates;
mod errors;
mod helpers;
mod openapi;
mod users;

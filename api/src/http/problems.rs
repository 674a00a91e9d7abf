//! The error responses every path names, declared once ([`ReadProblems`], [`WriteProblems`],
//! [`PublicProblems`], [`BrokerProblems`]) instead of repeating the same lines per path.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::error::PROBLEM_JSON;

fn problems(statuses: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content(PROBLEM_JSON, content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

const BAD_REQUEST: (u16, &str) = (400, "Invalid input: `errors` names each bad field");
const UNAUTHORIZED: (u16, &str) = (401, "No or bad credentials");
const FORBIDDEN: (u16, &str) = (403, "The caller's role may not do this");
const NOT_FOUND: (u16, &str) = (404, "No such object in the caller's scope");
const CONFLICT: (u16, &str) = (409, "Clashes with what exists, or a limit was reached");
const TOO_LARGE: (u16, &str) = (413, "The body is larger than allowed");
const MEDIA_TYPE: (u16, &str) = (415, "The body is not declared as JSON");
const TOO_MANY: (u16, &str) = (429, "Too many attempts or changes; see Retry-After");
const UNAVAILABLE: (u16, &str) = (503, "The database is unreachable; nothing was changed");

/// The problems a reading call of the management API can answer with.
pub struct ReadProblems;

impl IntoResponses for ReadProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, UNAVAILABLE])
    }
}

/// The problems a changing call of the management API can answer with.
pub struct WriteProblems;

impl IntoResponses for WriteProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            BAD_REQUEST,
            UNAUTHORIZED,
            FORBIDDEN,
            NOT_FOUND,
            CONFLICT,
            TOO_LARGE,
            MEDIA_TYPE,
            TOO_MANY,
            UNAVAILABLE,
        ])
    }
}

/// The problems an unauthenticated JSON call (sign-in) can answer with.
pub struct PublicProblems;

impl IntoResponses for PublicProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[BAD_REQUEST, UNAUTHORIZED, TOO_LARGE, MEDIA_TYPE, TOO_MANY, UNAVAILABLE])
    }
}

/// The problems of the broker endpoints (besides their own allow/deny answers).
pub struct BrokerProblems;

impl IntoResponses for BrokerProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (400, "The body is neither JSON nor a form"),
            (
                403,
                "Denied, or a caller outside broker_allow or without the broker secret",
            ),
            TOO_LARGE,
            (503, "fleetca cannot decide right now (database unreachable)"),
        ])
    }
}

//! Validated input types. A value of one of these types has already passed its rules, so
//! services never re-check them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A username: 3–64 of `[a-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if !(3..=64).contains(&s.len()) || !ok_chars {
            return Err("must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'".into());
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An enterprise code such as `nnn.acme`: `[a-z0-9][a-z0-9.-]{0,63}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enterprise(String);

impl Enterprise {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'));
        if !ok {
            return Err(
                "must be 1 to 64 characters of a-z, 0-9, '.' and '-', starting with a letter or digit (e.g. nnn.acme)"
                    .into(),
            );
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything inside its own enterprise.
    Manager,
    /// An API key for MQTT: reads its own record and certificates.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Service => "service",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "service" => Some(Role::Service),
            _ => None,
        }
    }
}

/// Page number and size of a listing: `page` from 1, `page_size` 1..=500 (default 50).
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub page: u64,
    pub page_size: u64,
}

impl PageRequest {
    pub const DEFAULT_SIZE: u64 = 50;
    pub const MAX_SIZE: u64 = 500;

    pub fn parse(page: Option<u64>, page_size: Option<u64>) -> Result<Self, crate::error::ApiError> {
        let mut errors = crate::error::FieldErrors::new();
        let page = page.unwrap_or(1);
        if page == 0 {
            errors.insert("page".into(), vec!["must be 1 or more".into()]);
        }
        let page_size = page_size.unwrap_or(Self::DEFAULT_SIZE);
        if !(1..=Self::MAX_SIZE).contains(&page_size) {
            errors.insert(
                "page_size".into(),
                vec![format!("must be from 1 to {}", Self::MAX_SIZE)],
            );
        }
        if !errors.is_empty() {
            return Err(crate::error::ApiError::Validation(errors));
        }
        Ok(Self { page, page_size })
    }

    pub fn storage(self) -> fleetca_storage::Page {
        fleetca_storage::Page {
            offset: (self.page - 1).saturating_mul(self.page_size),
            limit: self.page_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_their_rules() {
        assert!(Username::parse("svc-mqtt.prod_1").is_ok());
        for bad in ["ab", "UPPER", "has space", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enterprise_codes_follow_their_rules() {
        assert!(Enterprise::parse("nnn.acme").is_ok());
        assert!(Enterprise::parse("0").is_ok());
        for bad in ["", ".acme", "-x", "Acme", "a_b", &"a".repeat(65)] {
            assert!(Enterprise::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The domain's words: who is calling ([`Principal`], [`Role`]) and validated input types.
//! A value of one of the input types has already passed its rules, so a service that takes
//! one cannot be called with unchecked input and never re-checks it. Parsing returns the
//! message for the field, worded for the client; the caller decides the field's name.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::Duration;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The text of a validated name: borrowed, or taken whole.
macro_rules! text {
    ($($name:ident),+) => {$(
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }
    )+};
}

text!(
    Username,
    Enterprise,
    DeviceId,
    Realm,
    Description,
    CertificateName,
    DnsName,
    ProductKey,
    DeviceKey
);

/// A closed set of names, each written once: the enum, its text, parsing it back, and serde
/// as that text.
macro_rules! names {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every one, in the order written.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    serde::de::Error::custom(format!("{text:?} is not one of {}", all.join(", ")))
                })
            }
        }
    };
}

names! {
    /// What a stored certificate is for.
    pub enum CertificateKind {
        /// An MQTT client certificate of an API key.
        Client = "client",
        /// A broker's TLS server certificate.
        Server = "server",
        /// A device's certificate (enrolled over EST).
        Device = "device",
        /// A claim certificate: it enrolls devices of a tenant over EST and does nothing else.
        Claim = "claim",
        /// A revocation canary: fleetca's own, to prove brokers refuse revoked certificates.
        Canary = "canary",
    }
}

names! {
    /// Where a CA stands in the hierarchy.
    pub enum CaRole {
        /// Self-signed: fleetca's own first CA, a root it made, or an operator's root it
        /// only knows the certificate of.
        Root = "root",
        /// Signed by a root; issues certificates.
        Intermediate = "intermediate",
    }
}

names! {
    /// What a CA does now.
    pub enum CaState {
        /// Issues every new certificate (exactly one CA is active).
        Active = "active",
        /// An intermediate whose key and CSR are made, waiting for its signed certificate.
        Pending = "pending",
        /// A root above the active CA: signs only intermediates and its own CRL (or, when
        /// fleetca does not hold its key, is only trusted).
        Standby = "standby",
        /// Issued until another CA took over: issues no more, its CRL is still published
        /// while certificates it signed are valid.
        Retiring = "retiring",
        /// Nothing it signed is valid any more.
        Retired = "retired",
        /// An intermediate its root revoked: on the root's CRL, out of the trust bundle, every
        /// certificate it signed revoked; its CRL is published while they are unexpired.
        Revoked = "revoked",
    }
}

impl CertificateKind {
    /// Whether a stored kind is this one.
    pub fn is(self, stored: &str) -> bool {
        stored == self.as_str()
    }
}

names! {
    /// What an audit record says was done.
    pub enum AuditAction {
        AuthFailuresSuppressed = "auth.failures_suppressed",
        AuthSignInFailed = "auth.sign_in_failed",
        AuthTokenFailed = "auth.token_failed",
        CaActivate = "ca.activate",
        CaIntermediateImport = "ca.intermediate_import",
        CaIntermediateRequest = "ca.intermediate_request",
        CaRetire = "ca.retire",
        CaRevoke = "ca.revoke",
        CaRootRollover = "ca.root_rollover",
        CanaryIssue = "canary.issue",
        CanaryRevoke = "canary.revoke",
        CertificateCreate = "certificate.create",
        CertificateEnroll = "certificate.enroll",
        CertificateRenew = "certificate.renew",
        CertificateRevoke = "certificate.revoke",
        ClaimCreate = "claim.create",
        ClaimRevoke = "claim.revoke",
        CrlRepair = "crl.repair",
        CrlRepairAcknowledge = "crl.repair_acknowledge",
        DeviceCreate = "device.create",
        DeviceDelete = "device.delete",
        DeviceDisable = "device.disable",
        DeviceEnable = "device.enable",
        DeviceRotate = "device.rotate",
        DeviceUpdate = "device.update",
        EstAuthFailed = "est.auth_failed",
        ProductCreate = "product.create",
        ProductDelete = "product.delete",
        ProductRotateSecret = "product.rotate_secret",
        ProductUpdate = "product.update",
        ProductDeviceActivate = "product_device.activate",
        ProductDeviceCreate = "product_device.create",
        ProductDeviceDelete = "product_device.delete",
        ProductDeviceDisable = "product_device.disable",
        ProductDeviceEnable = "product_device.enable",
        ProductDeviceResetActivation = "product_device.reset_activation",
        ProductDeviceRotateSecret = "product_device.rotate_secret",
        ProductDeviceUpdate = "product_device.update",
        UserActivate = "user.activate",
        UserCreate = "user.create",
        UserDeactivate = "user.deactivate",
        UserRotateToken = "user.rotate_token",
        UserSetPassword = "user.set_password",
        UserUpdate = "user.update",
        WebhookCreate = "webhook.create",
        WebhookDelete = "webhook.delete",
        WebhookRedeliver = "webhook.redeliver",
        WebhookRotateSecret = "webhook.rotate_secret",
        WebhookTest = "webhook.test",
        WebhookUpdate = "webhook.update",
    }
}

impl AuditAction {
    /// The webhook event the change announces. An API key's deactivation is announced by
    /// the user service, which knows the user is a key.
    pub fn announces(self) -> Option<EventKind> {
        use AuditAction::*;
        Some(match self {
            CertificateCreate | CertificateEnroll => EventKind::CertificateIssued,
            CertificateRenew => EventKind::CertificateRenewed,
            CertificateRevoke => EventKind::CertificateRevoked,
            DeviceDisable | ProductDeviceDisable => EventKind::DeviceDisabled,
            DeviceDelete | ProductDeviceDelete => EventKind::DeviceDeleted,
            _ => return None,
        })
    }

    /// Whether the change ends the live MQTT sessions of its target. A product disabled is
    /// marked by the product service, which knows the change disables it.
    pub fn ends_sessions(self) -> bool {
        use AuditAction::*;
        matches!(
            self,
            CertificateRevoke
                | UserDeactivate
                | UserRotateToken
                | DeviceDisable
                | DeviceDelete
                | DeviceRotate
                | ProductDeviceDisable
                | ProductDeviceDelete
                | ProductDeviceRotateSecret
                | ProductDelete
                | ProductRotateSecret
        )
    }
}

names! {
    /// An event webhook endpoints subscribe to.
    pub enum EventKind {
        CertificateIssued = "certificate.issued",
        CertificateRevoked = "certificate.revoked",
        /// 30, 7 and 1 days before a certificate expires, each once.
        CertificateExpiring = "certificate.expiring",
        CertificateRenewed = "certificate.renewed",
        DeviceDisabled = "device.disabled",
        DeviceDeleted = "device.deleted",
        ApiKeyDeactivated = "api_key.deactivated",
        /// Writing the CRL file or running the reload command failed.
        CrlPublicationFailed = "crl.publication_failed",
        /// 180, 90 and 30 days before a CA fleetca trusts expires, each once.
        CaExpiring = "ca.expiring",
        /// The revocation canary's revoked certificate connected to a broker: the broker
        /// does not check fleetca's CRL.
        BrokerRevocationNotEnforced = "broker.revocation_not_enforced",
    }
}

impl EventKind {
    /// Events about fleetca itself, for endpoints of every enterprise (an admin's) only.
    pub fn is_system(self) -> bool {
        matches!(
            self,
            EventKind::CrlPublicationFailed | EventKind::BrokerRevocationNotEnforced | EventKind::CaExpiring
        )
    }
}

/// A secret string whose `Debug` hides it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Bad fields and what is wrong with each (a field may be a path such as `3.device_id`).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Collects field errors while a request is parsed.
#[derive(Default, Debug)]
pub struct Problems(FieldErrors);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `Ok` values; records an `Err` against `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(why) => {
                self.add(field, why);
                None
            }
        }
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: &str, why: impl Into<String>) {
        self.0.entry(field.to_owned()).or_default().push(why.into());
    }

    /// Records another collection's problems with each field name prefixed (`{prefix}.{field}`).
    pub fn nest(&mut self, prefix: &str, other: FieldErrors) {
        for (field, why) in other {
            self.0.entry(format!("{prefix}.{field}")).or_default().extend(why);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the errors.
    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }

    pub fn into_inner(self) -> FieldErrors {
        self.0
    }
}

/// Control characters have no use in any text field fleetca stores, and PostgreSQL refuses
/// NUL in text: refuse them at the edge, naming the field.
fn printable(s: &str) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A username: 3–64 of `[a-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// fleetca's own MQTT identities (the activation publisher) start with this.
    pub const RESERVED_PREFIX: &'static str = "fleetca-";

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if !(3..=64).contains(&s.len()) || !ok_chars {
            return Err("must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'".into());
        }
        if s.starts_with(Self::RESERVED_PREFIX) {
            return Err(format!(
                "names starting with {:?} are fleetca's own",
                Self::RESERVED_PREFIX
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// An enterprise code such as `nnn.acme`: `[a-z0-9][a-z0-9.-]{0,63}`. A device's tenant
/// is an enterprise code too ([`Tenant`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enterprise(String);

impl Enterprise {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut bytes = s.bytes();
        let ok = (1..=64).contains(&s.len())
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'));
        if !ok {
            return Err(
                "must be 1 to 64 characters of a-z, 0-9, '.' and '-', starting with a letter or digit (e.g. nnn.acme)"
                    .into(),
            );
        }
        Ok(Self(s.to_owned()))
    }
}

/// The tenant a device belongs to: an enterprise code.
pub type Tenant = Enterprise;

/// A device id: 1–128 of `[A-Za-z0-9._:-]`, unique within its tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !(1..=128).contains(&s.len())
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err("must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// A digest realm: 1–128 printable characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Realm(String);

impl Realm {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !(1..=128).contains(&s.chars().count()) || s.chars().any(char::is_control) {
            return Err("must be 1 to 128 printable characters".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// A free-text description: at most 500 printable characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.chars().count() > 500 {
            return Err("must be at most 500 characters".into());
        }
        printable(s)?;
        Ok(Self(s.to_owned()))
    }
}

/// A certificate's display name: 1–200 printable characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateName(String);

impl CertificateName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 200 {
            return Err("must be 1 to 200 characters".into());
        }
        printable(s)?;
        Ok(Self(s.to_owned()))
    }
}

/// A human's password: 12–256 characters.
pub struct Password(Secret);

impl Password {
    pub const MIN_LEN: usize = 12;

    pub fn parse(s: String) -> Result<Self, String> {
        let n = s.chars().count();
        if !(Self::MIN_LEN..=256).contains(&n) {
            return Err(format!("must be {} to 256 characters", Self::MIN_LEN));
        }
        Ok(Self(Secret::new(s)))
    }
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A client certificate's validity: 8,760 (1 year, the default) to 87,600 hours (10 years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityHours(i64);

impl Default for ValidityHours {
    fn default() -> Self {
        Self(Self::MIN)
    }
}

impl ValidityHours {
    pub const MIN: i64 = 8760;
    pub const MAX: i64 = 87600;

    pub fn parse(hours: Option<i64>) -> Result<Self, String> {
        let hours = hours.unwrap_or(Self::MIN);
        if !(Self::MIN..=Self::MAX).contains(&hours) {
            return Err(format!(
                "must be from {} (1 year) to {} (10 years) hours",
                Self::MIN,
                Self::MAX
            ));
        }
        Ok(Self(hours))
    }
    pub fn duration(self) -> Duration {
        Duration::hours(self.0)
    }
}

/// A hostname (RFC 1123 labels), optionally with a leading `*.` wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsName(String);

impl DnsName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        let ok = !bare.is_empty()
            && bare.len() <= 253
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(format!(
                "{name:?} is not a DNS name (labels of a-z, 0-9 and '-', optionally starting with \"*.\")"
            ));
        }
        Ok(Self(name.to_ascii_lowercase()))
    }
}

/// A broker's TLS server certificate to issue: at least one DNS name or IP address, 1–3,650
/// days (825 by default, the longest validity browsers and most TLS stacks accept).
#[derive(Clone, Debug)]
pub struct ServerCertRequest {
    pub name: String,
    pub dns_names: Vec<DnsName>,
    pub ip_addresses: Vec<IpAddr>,
    pub validity: Duration,
}

impl ServerCertRequest {
    pub const DEFAULT_DAYS: i64 = 825;
    pub const MAX_DAYS: i64 = 3650;
    /// Most subject alternative names (DNS and IP together).
    pub const MAX_NAMES: usize = 100;

    /// Validates the parts; errors are keyed `name`, `dns_names`, `validity_days`.
    pub fn parse(
        name: Option<&str>,
        dns_names: &[String],
        ip_addresses: Vec<IpAddr>,
        validity_days: Option<i64>,
    ) -> Result<Self, FieldErrors> {
        let mut problems = Problems::new();
        if dns_names.is_empty() && ip_addresses.is_empty() {
            problems.add("dns_names", "give at least one DNS name or IP address");
        }
        if dns_names.len() + ip_addresses.len() > Self::MAX_NAMES {
            problems.add(
                "dns_names",
                format!(
                    "at most {} names in all (DNS names and IP addresses); a broker needs a few",
                    Self::MAX_NAMES
                ),
            );
        }
        let dns: Vec<DnsName> = dns_names
            .iter()
            .filter_map(|n| problems.check("dns_names", DnsName::parse(n)))
            .collect();
        let days = validity_days.unwrap_or(Self::DEFAULT_DAYS);
        if !(1..=Self::MAX_DAYS).contains(&days) {
            problems.add("validity_days", format!("must be from 1 to {}", Self::MAX_DAYS));
        }
        let name = match name {
            Some(n) => problems
                .check("name", CertificateName::parse(n))
                .map(CertificateName::into_inner),
            None => Some(
                dns.first()
                    .map(|d| d.as_str().to_owned())
                    .or_else(|| ip_addresses.first().map(IpAddr::to_string))
                    .unwrap_or_else(|| "broker".into()),
            ),
        };
        problems.finish()?;
        Ok(Self {
            name: name.unwrap_or_default(),
            dns_names: dns,
            ip_addresses,
            validity: Duration::days(days),
        })
    }
}

/// A product key: 4–32 of `[A-Za-z0-9_-]`: every key EnOS (8 characters) and Alibaba (11)
/// hand out, and nothing that could split a topic level or the `{device}&{product}` username.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductKey(String);

impl ProductKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !(4..=32).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
            return Err("must be 4 to 32 characters of A-Z, a-z, 0-9, '_' and '-'".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// A device key (Alibaba's `deviceName`): 1–64 of `[A-Za-z0-9_.:@-]`, unique within its
/// product. No `&` and no `|`, which separate the MQTT username's and client id's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKey(String);

impl DeviceKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !(1..=64).contains(&s.len())
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
        {
            return Err("must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', ':', '@' and '-'".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// A device secret a client chose: 16–128 printable ASCII characters (a captured EnOS
/// password allows an offline guess at the secret, so short ones are refused).
pub fn sign_secret(s: &str) -> Result<Secret, String> {
    if !(16..=128).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be 16 to 128 printable ASCII characters without spaces".into());
    }
    Ok(Secret::new(s))
}

/// The sign-based family a product's devices belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// EnOS: SHA-256 of content + secret; static or dynamic activation.
    Enos,
    /// Alibaba Cloud IoT: HMAC of content keyed with the device secret.
    Aliyun,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Enos => "enos",
            Scheme::Aliyun => "aliyun",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enos" => Some(Scheme::Enos),
            "aliyun" => Some(Scheme::Aliyun),
            _ => None,
        }
    }
}

/// A product's allowed clock skew: `None` turns the timestamp check off; otherwise 1 s to
/// 1 day.
pub fn clock_skew(seconds: Option<i64>) -> Result<Option<i64>, String> {
    match seconds {
        Some(s) if !(1..=86_400).contains(&s) => Err("must be from 1 to 86400 seconds, or null for no check".into()),
        other => Ok(other),
    }
}

/// A search filter or query value: at most 200 printable characters.
pub fn query_text(s: &str) -> Result<String, String> {
    if s.chars().count() > 200 {
        return Err("must be at most 200 characters".into());
    }
    printable(s)?;
    Ok(s.to_owned())
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A role read back from the database. One fleetca did not write (a damaged or edited
    /// row) gives the least access, `service`, and is logged as an error rather than passed
    /// over in silence.
    pub fn stored(role: &str, username: &str) -> Self {
        Self::parse(role).unwrap_or_else(|| {
            tracing::error!(%username, role, "a user's stored role is not one fleetca knows; treated as an API key's");
            Role::Service
        })
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

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: Uuid,
    pub username: String,
    pub enterprise: String,
    pub role: Role,
    pub is_service_account: bool,
    /// The request it came with (empty for the CLI and tests).
    pub context: RequestContext,
}

impl Principal {
    /// For a manager, pins a listing's enterprise (or tenant) filter to its own enterprise.
    /// Returns `false` when the filter asked for another one: the listing is then empty.
    pub fn pin_enterprise(&self, filter: &mut Option<String>) -> bool {
        if self.role != Role::Manager {
            return true;
        }
        if filter.as_ref().is_some_and(|e| *e != self.enterprise) {
            return false;
        }
        *filter = Some(self.enterprise.clone());
        true
    }

    /// Whether objects of `enterprise` are inside this caller's scope to manage.
    pub fn manages(&self, enterprise: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.enterprise == enterprise,
            Role::Service => false,
        }
    }
}

/// Page number and size of a listing: `page` from 1 to [`PageRequest::MAX_PAGE`],
/// `page_size` 1..=500 (default 50).
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub page: u64,
    pub page_size: u64,
}

impl PageRequest {
    pub const DEFAULT_SIZE: u64 = 50;
    pub const MAX_SIZE: u64 = 500;
    /// Far beyond any real listing, and small enough that the offset it implies fits
    /// every database's integer type.
    pub const MAX_PAGE: u64 = 1_000_000;

    pub fn parse(page: Option<u64>, page_size: Option<u64>) -> Result<Self, FieldErrors> {
        let mut problems = Problems::new();
        let page = page.unwrap_or(1);
        if !(1..=Self::MAX_PAGE).contains(&page) {
            problems.add("page", format!("must be from 1 to {}", Self::MAX_PAGE));
        }
        let page_size = page_size.unwrap_or(Self::DEFAULT_SIZE);
        if !(1..=Self::MAX_SIZE).contains(&page_size) {
            problems.add("page_size", format!("must be from 1 to {}", Self::MAX_SIZE));
        }
        problems.finish()?;
        Ok(Self { page, page_size })
    }

    /// How many rows come before this page.
    pub fn offset(self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.page_size)
    }
}

/// One page of a listing and how many match in all.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub count: u64,
}

impl<T> Listing<T> {
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            count: 0,
        }
    }
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            items: self.items.into_iter().map(f).collect(),
            count: self.count,
        }
    }
}

impl<T> From<(Vec<T>, u64)> for Listing<T> {
    fn from((items, count): (Vec<T>, u64)) -> Self {
        Self { items, count }
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
        for bad in ["", ".acme", "-x", "Acme", "a_b", &"a".repeat(65), "a\0"] {
            assert!(Enterprise::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_fields_refuse_control_characters() {
        assert!(Description::parse("line\0").is_err());
        assert!(CertificateName::parse("a\u{7}b").is_err());
        assert!(query_text("x\0").is_err());
        assert!(CertificateName::parse("  spaced  ").is_ok_and(|n| n.into_inner() == "spaced"));
    }

    #[test]
    fn pages_are_bounded_so_the_offset_cannot_overflow() {
        assert!(PageRequest::parse(Some(u64::MAX), None).is_err());
        assert!(PageRequest::parse(Some(0), None).is_err());
        let p = PageRequest::parse(Some(PageRequest::MAX_PAGE), Some(PageRequest::MAX_SIZE)).unwrap();
        assert!(i64::try_from(p.offset()).is_ok());
    }

    #[test]
    fn server_certificate_requests_need_a_name_and_sane_validity() {
        let e = ServerCertRequest::parse(None, &[], vec![], None).unwrap_err();
        assert!(e.contains_key("dns_names"));
        let e = ServerCertRequest::parse(None, &["bad_name".into()], vec![], Some(0)).unwrap_err();
        assert!(e.contains_key("dns_names") && e.contains_key("validity_days"));
        let ok = ServerCertRequest::parse(None, &["Broker.Example".into()], vec![], None).unwrap();
        assert_eq!(ok.name, "broker.example");
        assert_eq!(ok.validity, Duration::days(825));
    }
}

//! Topic ACLs: rules with placeholders, and MQTT-correct matching of topics and filters.
//!
//! A subscription filter is allowed only if *every* topic it can match is allowed, so a
//! filter such as `v4/groups/#` or `v4/groups/+/x` can never reach past the caller's
//! enterprise. A placeholder whose value contains `/`, `+` or `#` (or is empty) disables the
//! rule it appears in, so an identity cannot widen its own pattern.

use serde::Deserialize;

/// What a client wants to do with a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Receive messages published on a topic.
    Read,
    /// Publish to a topic.
    #[serde(alias = "publish")]
    Write,
    /// Subscribe with a topic filter.
    Subscribe,
}

/// A rule: a topic pattern (placeholders `{enterprise}`, `{tenant}`, `{device_id}`,
/// `{username}`, `{clientid}`, `{product_key}`, `{device_key}`; MQTT wildcards allowed)
/// and what it permits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    pub pattern: String,
    pub access: Vec<Access>,
}

/// The rules for each kind of principal (the `[acl]` table of the settings file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Rules for API keys (by username/token or by client certificate).
    #[serde(default = "default_api_key_rules")]
    pub api_key: Vec<AclRule>,
    /// Rules for devices.
    #[serde(default = "default_device_rules")]
    pub device: Vec<AclRule>,
    /// Rules for EnOS sign-based devices.
    #[serde(default = "default_enos_rules")]
    pub enos_device: Vec<AclRule>,
    /// Rules for Alibaba Cloud IoT sign-based devices.
    #[serde(default = "default_aliyun_rules")]
    pub aliyun_device: Vec<AclRule>,
}

impl Default for AclConfig {
    fn default() -> Self {
        Self {
            api_key: default_api_key_rules(),
            device: default_device_rules(),
            enos_device: default_enos_rules(),
            aliyun_device: default_aliyun_rules(),
        }
    }
}

fn default_api_key_rules() -> Vec<AclRule> {
    vec![AclRule {
        pattern: "v4/groups/{enterprise}.master/#".into(),
        access: vec![Access::Read, Access::Subscribe],
    }]
}

fn default_device_rules() -> Vec<AclRule> {
    vec![AclRule {
        pattern: "devices/{tenant}/{device_id}/#".into(),
        access: vec![Access::Read, Access::Write, Access::Subscribe],
    }]
}

fn rw_subscribe(pattern: &str) -> AclRule {
    AclRule {
        pattern: pattern.into(),
        access: vec![Access::Read, Access::Write, Access::Subscribe],
    }
}

fn default_enos_rules() -> Vec<AclRule> {
    vec![
        rw_subscribe("/sys/{product_key}/{device_key}/#"),
        rw_subscribe("/ext/session/{product_key}/{device_key}/#"),
    ]
}

fn default_aliyun_rules() -> Vec<AclRule> {
    vec![
        rw_subscribe("/{product_key}/{device_key}/user/#"),
        rw_subscribe("/sys/{product_key}/{device_key}/#"),
        rw_subscribe("/ext/session/{product_key}/{device_key}/#"),
    ]
}

/// The topic on which a dynamically activated EnOS device receives its secret.
pub fn activation_topic(product_key: &str, device_key: &str) -> String {
    format!("/ext/session/{product_key}/{device_key}/thing/activate/info")
}

/// The same message under a topic a broker can build from the MQTT username alone
/// (`{device_key}&{product_key}`): EMQX's `auto_subscribe` knows `${username}` but cannot
/// split it, and EnOS's SDK, which never subscribes, takes any topic matching
/// `/ext/session/(.*)/(.*)/thing/activate/info`. It lies within the activation topics'
/// filter, so every rule that guards those guards it; a product key never holds `&`, so it
/// is no device's documented topic.
pub fn username_activation_topic(product_key: &str, device_key: &str) -> String {
    format!("/ext/session/{device_key}&{product_key}/activation/thing/activate/info")
}

/// Both topics a device's activation message is published on.
pub fn activation_topics(product_key: &str, device_key: &str) -> [String; 2] {
    [
        activation_topic(product_key, device_key),
        username_activation_topic(product_key, device_key),
    ]
}

/// Whether `topic` (or a filter) reaches any device's activation topic: only fleetca's own
/// publisher may publish there.
pub fn touches_activation_topics(topic: &str) -> bool {
    let pattern = "/ext/session/+/+/thing/activate/info";
    within(pattern, topic) || within(topic, pattern) || overlaps(topic, pattern)
}

/// Whether two filters can match a common topic.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&"#"), _) | (_, Some(&"#")) => return true,
            (None, None) => return true,
            (None, _) | (_, None) => return false,
            (Some(x), Some(y)) if *x == "+" || *y == "+" || x == y => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Placeholder values for one principal.
#[derive(Debug, Default)]
pub struct Vars<'a> {
    pub enterprise: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub clientid: Option<&'a str>,
    pub product_key: Option<&'a str>,
    pub device_key: Option<&'a str>,
    /// The topic came as an AMQP routing key (RabbitMQ), where `.` separates levels: the
    /// rules are read the same way (a `.` in a pattern or a value is a level boundary there
    /// too), and a value with `*` (a routing-key wildcard) is unsafe.
    pub dots_are_levels: bool,
}

impl Vars<'_> {
    /// Expands the placeholders of `pattern`; `None` when one is unknown or unsafe.
    fn expand(&self, pattern: &str) -> Option<String> {
        let mut out = String::with_capacity(pattern.len() + 32);
        let mut rest = pattern;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}')? + start;
            let value = match &rest[start + 1..end] {
                "enterprise" => self.enterprise,
                "tenant" => self.tenant,
                "device_id" => self.device_id,
                "username" => self.username,
                "clientid" => self.clientid,
                "product_key" => self.product_key,
                "device_key" => self.device_key,
                _ => None,
            }?;
            if value.is_empty() || value.contains(['/', '+', '#']) || (self.dots_are_levels && value.contains('*')) {
                return None;
            }
            out.push_str(value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        if self.dots_are_levels {
            out = out.replace('.', "/");
        }
        Some(out)
    }
}

/// The rules with their placeholders filled for one principal: `(filter, access)`, leaving
/// out a rule whose placeholder is unknown or unsafe, or whose filter is malformed.
pub fn expand_rules(rules: &[AclRule], vars: &Vars<'_>) -> Vec<(String, Vec<Access>)> {
    rules
        .iter()
        .filter_map(|r| Some((vars.expand(&r.pattern)?, r.access.clone())))
        .filter(|(filter, _)| valid_filter(filter))
        .collect()
}

/// Whether `topic` (a topic name, or a filter for [`Access::Subscribe`]) is allowed.
pub fn allowed(rules: &[AclRule], vars: &Vars<'_>, topic: &str, access: Access) -> bool {
    if !valid_filter(topic) || (access != Access::Subscribe && topic.contains(['+', '#'])) {
        return false;
    }
    rules
        .iter()
        .filter(|r| r.access.contains(&access))
        .filter_map(|r| vars.expand(&r.pattern))
        .any(|pattern| within(topic, &pattern))
}

/// A well-formed topic or filter: not empty, no NUL, `#` only as the whole last level,
/// `+` only as a whole level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels
        .iter()
        .enumerate()
        .all(|(i, l)| (!l.contains('#') || (*l == "#" && i == levels.len() - 1)) && (!l.contains('+') || *l == "+"))
}

/// Whether every topic matched by `filter` is matched by `pattern` (both MQTT filters).
pub fn within(filter: &str, pattern: &str) -> bool {
    // Topics starting with '$' are never matched by a leading wildcard (MQTT 4.7.2).
    if filter.starts_with('$') && pattern.starts_with(['+', '#']) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let p: Vec<&str> = pattern.split('/').collect();
    let mut i = 0;
    loop {
        match (f.get(i), p.get(i)) {
            (_, Some(&"#")) => return true,
            (None, None) => return true,
            // "a/#" also matches "a" itself.
            (None, Some(_)) => return p.get(i) == Some(&"#"),
            (Some(_), None) => return false,
            (Some(&"#"), Some(_)) => return false,
            (Some(&"+"), Some(&pl)) => {
                if pl != "+" {
                    return false;
                }
            }
            (Some(&fl), Some(&pl)) => {
                if pl != "+" && pl != fl {
                    return false;
                }
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_vars() -> Vars<'static> {
        Vars {
            enterprise: Some("nnn.acme"),
            username: Some("svc"),
            clientid: Some("c1"),
            ..Default::default()
        }
    }

    fn device_vars() -> Vars<'static> {
        Vars {
            tenant: Some("acme"),
            device_id: Some("dev-1"),
            clientid: Some("dev-1"),
            ..Default::default()
        }
    }

    #[test]
    fn api_key_rules_stay_inside_the_enterprise() {
        let rules = default_api_key_rules();
        let v = key_vars();
        let table = [
            ("v4/groups/nnn.acme.master/+/uplinks", Access::Subscribe, true),
            ("v4/groups/nnn.acme.master/#", Access::Subscribe, true),
            ("v4/groups/nnn.acme.master/dev1/uplinks", Access::Read, true),
            ("v4/groups/nnn.acme.master", Access::Subscribe, true),
            ("v4/groups/#", Access::Subscribe, false),
            ("v4/groups/+/dev1/uplinks", Access::Subscribe, false),
            ("+/groups/nnn.acme.master/#", Access::Subscribe, false),
            ("#", Access::Subscribe, false),
            ("v4/groups/nnn.globex.master/#", Access::Subscribe, false),
            ("v4/groups/nnn.acme.master/dev1/uplinks", Access::Write, false),
            ("v4/groups/nnn.acme.master/+/x", Access::Read, false),
            ("v4/groups/nnn.acme.master/a/#/b", Access::Subscribe, false),
            ("v4/groups/nnn.acme.master/a+/b", Access::Subscribe, false),
            ("", Access::Subscribe, false),
        ];
        for (topic, access, expect) in table {
            assert_eq!(allowed(&rules, &v, topic, access), expect, "{topic} {access:?}");
        }
    }

    #[test]
    fn device_rules_stay_inside_the_device() {
        let rules = default_device_rules();
        let v = device_vars();
        let table = [
            ("devices/acme/dev-1/telemetry", Access::Write, true),
            ("devices/acme/dev-1/cmd/#", Access::Subscribe, true),
            ("devices/acme/dev-1/cmd", Access::Read, true),
            ("devices/acme/+/telemetry", Access::Subscribe, false),
            ("devices/acme/#", Access::Subscribe, false),
            ("devices/acme/dev-2/telemetry", Access::Write, false),
            ("devices/+/dev-1/telemetry", Access::Subscribe, false),
        ];
        for (topic, access, expect) in table {
            assert_eq!(allowed(&rules, &v, topic, access), expect, "{topic} {access:?}");
        }
    }

    #[test]
    fn unsafe_placeholder_values_disable_their_rule() {
        let rules = vec![AclRule {
            pattern: "clients/{clientid}/#".into(),
            access: vec![Access::Subscribe],
        }];
        let ok = Vars {
            clientid: Some("abc"),
            ..Default::default()
        };
        assert!(allowed(&rules, &ok, "clients/abc/x", Access::Subscribe));
        for bad in ["+", "#", "a/b", ""] {
            let v = Vars {
                clientid: Some(bad),
                ..Default::default()
            };
            assert!(!allowed(&rules, &v, "clients/+/x", Access::Subscribe), "{bad}");
            assert!(!allowed(&rules, &v, "clients/a/b/x", Access::Subscribe), "{bad}");
        }
        let missing = Vars::default();
        assert!(!allowed(&rules, &missing, "clients/abc/x", Access::Subscribe));
    }

    #[test]
    fn sign_device_rules_stay_inside_the_device_and_activation_topics_are_known() {
        let v = Vars {
            product_key: Some("pk0000000001"),
            device_key: Some("dev-1"),
            ..Default::default()
        };
        let rules = default_aliyun_rules();
        assert!(allowed(&rules, &v, "/pk0000000001/dev-1/user/up", Access::Write));
        assert!(!allowed(&rules, &v, "/pk0000000001/dev-2/user/up", Access::Write));
        assert!(!allowed(&rules, &v, "/pk0000000001/+/user/#", Access::Subscribe));
        let rules = default_enos_rules();
        assert!(allowed(
            &rules,
            &v,
            "/sys/pk0000000001/dev-1/thing/event",
            Access::Write
        ));
        assert!(!allowed(&rules, &v, "/sys/pk0000000001/#", Access::Subscribe));
        for t in [
            "/ext/session/pk/dev/thing/activate/info",
            "/ext/session/+/+/thing/activate/info",
            "/ext/session/pk/#",
            "#",
            "/ext/+/pk/dev/thing/activate/info",
            &username_activation_topic("pk", "dev"),
        ] {
            assert!(touches_activation_topics(t), "{t}");
        }
        for t in [
            "/ext/session/pk/dev/thing/other",
            "/sys/pk/dev/x",
            "/ext/session/pk/dev/thing/activate",
        ] {
            assert!(!touches_activation_topics(t), "{t}");
        }
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!within("$SYS/broker/load", "#"));
        assert!(!within("$SYS/broker/load", "+/broker/load"));
        assert!(within("$SYS/broker/load", "$SYS/#"));
    }
}

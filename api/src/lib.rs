//! fleetca: the certificate authority and credential service behind MQTT device fleets.
//!
//! The code is organised by what it does. Read `domain` (the words and validated input
//! types) and `support` (the service error, the clock, limits), then the context of the flow
//! you care about — each owns it from its routes (`<context>/http/`) to its storage calls:
//!
//! - `outbox`: what a change writes beside itself — the audit chain, webhooks, change events.
//! - `identity`: users, API keys, tokens, sessions, password hashing.
//! - `pki`: issuance, renewal, revocation and the CRL, EST and claims.
//! - `fleet`: HA1 devices, sign-based products and their devices.
//! - `brokers`: the brokers' auth and ACL calls, ending live sessions, the revocation canary.
//! - `ops`: what operators read (overview, readiness, repairs).
//!
//! Each context imports only those listed before it (a test holds it, and that no modules
//! import each other in a circle). On top: `http` (the route table, OpenAPI, metrics, the UI's assets),
//! `error` (the one place errors become problem+json), `app` (the wiring), `state`,
//! `startup`, `config` and `cli`.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

pub mod app;
pub mod brokers;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod fleet;
pub mod http;
pub mod identity;
pub mod logging;
pub mod ops;
pub mod outbox;
pub mod pki;
pub mod startup;
pub mod state;
pub mod support;
pub mod tls;

/// The module graph, read from the code (not the tests) of every file: no two modules
/// import each other, directly or around a circle; each context keeps to the layers beneath
/// it; and no file outgrows what one reading takes.
#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Module path (`pki::http::certificates`) → its file's code before `#[cfg(test)]`, for
    /// this crate.
    fn modules() -> BTreeMap<String, String> {
        modules_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
    }

    /// The same for the crate whose sources are in `root`.
    fn modules_in(root: &Path) -> BTreeMap<String, String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                    continue;
                }
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace(".rs", "");
                let name = match rel.strip_suffix("/mod") {
                    Some(dir) => dir.to_owned(),
                    None => rel,
                }
                .replace('/', "::");
                if name == "lib" || name == "main" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap().to_owned();
                out.insert(name, code);
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    /// The modules each module's code names (`crate::…`, `super::…`, `self::…`), each resolved
    /// to the longest module path it starts with.
    fn graph(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
        let resolve = |segments: Vec<String>| -> Option<String> {
            (1..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|m| modules.contains_key(m))
        };
        let mut g = BTreeMap::new();
        for (name, code) in modules {
            let me: Vec<String> = name.split("::").map(str::to_owned).collect();
            let deps: &mut BTreeSet<String> = g.entry(name.clone()).or_default();
            for line in code.lines().map(str::trim_start) {
                if line.starts_with("//") || line.starts_with("pub mod ") || line.starts_with("mod ") {
                    continue;
                }
                for (i, _) in line
                    .match_indices("crate::")
                    .chain(line.match_indices("super::"))
                    .chain(line.match_indices("self::"))
                {
                    if i > 0 && line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue; // fleetca_storage::…, super::super::…, a::self::…
                    }
                    let rest = &line[i..];
                    let (base, rest) = if let Some(r) = rest.strip_prefix("crate::") {
                        (Vec::new(), r)
                    } else if let Some(r) = rest.strip_prefix("super::") {
                        // `super` is the parent module, for `a/b.rs` and `a/b/mod.rs` alike.
                        (me[..me.len().saturating_sub(1)].to_vec(), r)
                    } else {
                        (me.clone(), &rest["self::".len()..])
                    };
                    let mut segments = base;
                    // `a::b::{c, d::e}`: the path up to the brace, then each item.
                    let path: String = rest
                        .chars()
                        .take_while(|c| {
                            c.is_alphanumeric()
                                || *c == '_'
                                || *c == ':'
                                || *c == '{'
                                || *c == '}'
                                || *c == ','
                                || *c == ' '
                        })
                        .collect();
                    let (stem, group) = match path.split_once('{') {
                        Some((s, g)) => (
                            s.trim_end_matches(':').to_owned(),
                            g.split('}').next().unwrap_or("").to_owned(),
                        ),
                        None => (path.split(' ').next().unwrap_or("").to_owned(), String::new()),
                    };
                    segments.extend(stem.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
                    let items: Vec<Vec<String>> = if group.is_empty() {
                        vec![segments.clone()]
                    } else {
                        group
                            .split(',')
                            .map(|item| {
                                let mut s = segments.clone();
                                s.extend(
                                    item.trim()
                                        .split("::")
                                        .filter(|p| !p.is_empty() && *p != "self")
                                        .map(str::to_owned),
                                );
                                s
                            })
                            .collect()
                    };
                    for item in items {
                        if let Some(m) = resolve(item)
                            && m != *name
                        {
                            deps.insert(m);
                        }
                    }
                }
            }
        }
        g
    }

    fn top(m: &str) -> &str {
        m.split("::").next().unwrap_or(m)
    }

    fn assert_no_circle(g: &BTreeMap<String, BTreeSet<String>>) {
        fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
            if done.contains(n) {
                return;
            }
            if let Some(at) = path.iter().position(|p| p == n) {
                panic!("import circle: {} -> {n}", path[at..].join(" -> "));
            }
            path.push(n.to_owned());
            for d in g.get(n).into_iter().flatten() {
                visit(d, g, path, done);
            }
            path.pop();
            done.insert(n.to_owned());
        }
        let mut done = BTreeSet::new();
        for n in g.keys() {
            visit(n, g, &mut Vec::new(), &mut done);
        }
    }

    #[test]
    fn storage_modules_form_no_circle() {
        let modules = modules_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../storage/src"));
        assert!(modules.contains_key("outbox"), "storage's sources were not found");
        assert_no_circle(&graph(&modules));
    }

    #[test]
    fn modules_form_no_circle_and_each_context_keeps_to_the_layers_beneath_it() {
        let modules = modules();
        let g = graph(&modules);
        assert_no_circle(&g);
        // What each layer must never import: everything above it.
        const CONTEXTS: [&str; 6] = ["identity", "outbox", "pki", "fleet", "brokers", "ops"];
        let above: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            (
                "support",
                [&CONTEXTS[..], &["app", "http", "error", "state", "startup", "config"]].concat(),
            ),
            ("outbox", vec!["identity", "pki", "fleet", "brokers", "ops", "app"]),
            ("identity", vec!["pki", "fleet", "brokers", "ops", "app"]),
            ("pki", vec!["fleet", "brokers", "ops", "app"]),
            ("fleet", vec!["brokers", "ops", "app"]),
            ("brokers", vec!["ops", "app"]),
        ]);
        for (m, deps) in &g {
            if top(m) == "domain" {
                assert!(deps.iter().all(|d| top(d) == "domain"), "domain imports {deps:?}");
            }
            for d in deps {
                assert!(
                    !above.get(top(m)).is_some_and(|a| a.contains(&top(d))),
                    "{m} imports {d}, which sits above it"
                );
            }
            // A context's handlers use the HTTP edge's leaves, never the route table above them.
            if m.contains("::http") && top(m) != "http" {
                for d in deps.iter().filter(|d| top(d) == "http") {
                    assert!(
                        ["http::edge", "http::extract", "http::problems", "http::whole"].contains(&d.as_str()),
                        "{m} imports {d}: handlers use only http::{{edge, extract, problems, whole}}"
                    );
                }
            }
        }
        // A context's services know nothing of HTTP: no actix, no utoipa, no handlers.
        for (m, code) in &modules {
            if CONTEXTS.contains(&top(m)) && !m.contains("::http") {
                for word in ["actix_web", "utoipa", "crate::http", "crate::error", "crate::state"] {
                    assert!(!code.contains(word), "{m} (a service) names {word}");
                }
            }
        }
    }

    #[test]
    fn no_file_outgrows_a_reading() {
        for (name, code) in modules() {
            let lines = code.lines().count();
            assert!(
                lines <= 800,
                "{name} has {lines} lines outside its tests (at most 800: split it by what it does)"
            );
        }
    }
}

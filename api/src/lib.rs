//! fleetca: the certificate authority and credential service behind MQTT device fleets.
//!
//! The code is organised by what it does. Read `domain` (the words — roles, certificate kinds,
//! audit actions, webhook events — and validated input types; it imports nothing of ours) and
//! `support` (the service error, the clock, limits), then the context of the flow you care
//! about — each owns it from its routes (`<context>/http/`) to its storage calls:
//!
//! - `outbox`: what a change writes beside itself — the audit chain, webhooks, change events.
//! - `identity`: users, API keys, tokens, sessions, password hashing.
//! - `pki`: issuance (its rules a pure function, `pki::issuance`), renewal, revocation and the
//!   CRL, EST and claims.
//! - `fleet`: HA1 devices, sign-based products and their devices.
//! - `brokers`: the brokers' auth and ACL calls (one folder per broker family), ending live
//!   sessions (one adapter per broker API), the revocation canary.
//! - `ops`: what operators read (overview, readiness, repairs).
//!
//! Each context imports only those listed before it (a test holds it, and that no modules
//! import each other in a circle). On top: `http` (the route table, OpenAPI, metrics, the UI's assets),
//! `error` (the one table of what each error means to a client), `app` (the wiring), `state`,
//! `startup`, `config` and `cli` (the server's commands; the client commands are the
//! `fleetca-cli` crate's).
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
                out.insert(name, without_tests(&text));
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    /// The code without comment lines and without the items under `#[cfg(test)]`.
    fn without_tests(text: &str) -> String {
        let mut code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        while let Some(at) = code.find("#[cfg(test)]") {
            let rest = &code[at..];
            let end = match (rest.find('{'), rest.find(';')) {
                (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                    let mut depth = 0usize;
                    let mut close = rest.len();
                    for (i, c) in rest.char_indices().skip(open) {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    close = i + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    close
                }
                (_, Some(semi)) => semi + 1,
                _ => rest.len(),
            };
            code.replace_range(at..at + end, "");
        }
        code
    }

    /// Every path a `use` tree names: `a::{b::{c, d}, e as f, self}` → `a::b::c`, `a::b::d`,
    /// `a::e`, `a`.
    fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        let (head, group) = match tree.find('{') {
            Some(open) => (
                &tree[..open],
                Some(&tree[open + 1..tree.rfind('}').unwrap_or(tree.len())]),
            ),
            None => (tree, None),
        };
        let mut path = prefix.to_vec();
        for seg in head.split("::").map(str::trim).filter(|s| !s.is_empty()) {
            let seg = seg.split(" as ").next().unwrap_or(seg).trim();
            if seg != "self" && seg != "*" {
                path.push(seg.to_owned());
            }
        }
        let Some(group) = group else {
            out.push(path);
            return;
        };
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&path, &group[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if !group[start..].trim().is_empty() {
            expand(&path, &group[start..], out);
        }
    }

    /// The modules each module's code names — its `use` trees (however they are wrapped and
    /// nested; `crate::`, `super::`, `self::` or a child module's name) and every `crate::…`
    /// or `super::…` path elsewhere — each resolved to the longest module path it starts with.
    fn graph(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
        let mut g = BTreeMap::new();
        for (name, code) in modules {
            let me: Vec<String> = name.split("::").map(str::to_owned).collect();
            // Absolute segments of a path as written in `name`, or None for another crate.
            let absolute = |path: &[String]| -> Option<Vec<String>> {
                let first = path.first()?;
                let mut base: Vec<String> = match first.as_str() {
                    "crate" => Vec::new(),
                    "self" => me.clone(),
                    "super" => me.clone(),
                    child if modules.contains_key(&[me.clone(), vec![child.to_owned()]].concat().join("::")) => {
                        me.clone()
                    }
                    _ => return None,
                };
                let mut rest = path;
                if first == "crate" || first == "self" {
                    rest = &path[1..];
                }
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                Some([base, rest.to_vec()].concat())
            };
            let resolve = |segments: Vec<String>| -> Option<String> {
                (1..=segments.len())
                    .rev()
                    .map(|n| segments[..n].join("::"))
                    .find(|m| modules.contains_key(m))
            };
            let mut paths: Vec<Vec<String>> = Vec::new();
            // `use` statements, joined across lines.
            let flat = code.split_whitespace().collect::<Vec<_>>().join(" ");
            for (at, _) in flat.match_indices("use ") {
                if at > 0 && !flat[..at].ends_with([' ', ';', '}', '{']) {
                    continue;
                }
                let body = flat[at + 4..].split(';').next().unwrap_or("");
                expand(&[], body, &mut paths);
            }
            // Paths written out in the code.
            for line in code.lines() {
                for (i, _) in line.match_indices("crate::").chain(line.match_indices("super::")) {
                    if i > 0 && line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let word: String = line[i..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    paths.push(word.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
                }
            }
            let deps: &mut BTreeSet<String> = g.entry(name.clone()).or_default();
            // A module declaring or re-exporting its own children does not depend on them.
            let own = format!("{name}::");
            for path in paths {
                if let Some(m) = absolute(&path).and_then(resolve)
                    && m != *name
                    && !m.starts_with(&own)
                {
                    deps.insert(m);
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
        // The domain's words are the bottom: no crate of ours, no HTTP, no database.
        let domain = modules.get("domain").expect("domain.rs was not found");
        for word in ["fleetca_", "actix_web", "utoipa", "sea_orm", "reqwest"] {
            assert!(
                !domain.contains(word),
                "domain names {word}: it must import nothing of ours, no HTTP and no database"
            );
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

//! fleetca: the certificate authority and credential service behind MQTT device fleets.
//!
//! Read in this order: `domain` (the words and validated input types), `service` (the
//! flows, one struct per service, built from exactly what it uses), `http` (routes,
//! extractors that authorise, handlers that parse and call one service method), `error`
//! (the one place errors become responses), then `startup` (how it is all wired) and
//! `config`/`cli` (settings and the command line).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod logging;
pub mod service;
pub mod startup;
pub mod state;
pub mod tls;

/// The module graph, read from the `use` lines: the domain layer imports nothing of the
/// HTTP layer, and no two top-level modules import each other in a circle.
#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn imports(dir: &Path, graph: &mut BTreeMap<String, BTreeSet<String>>, root: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                imports(&path, graph, root);
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let top = rel.trim_end_matches(".rs").split('/').next().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let deps = graph.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for part in line.split("crate::").skip(1) {
                    let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if name != top && !name.is_empty() {
                        deps.insert(name);
                    }
                }
            }
        }
    }

    #[test]
    fn services_import_nothing_above_them_and_modules_form_no_cycle() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = BTreeMap::new();
        imports(&root, &mut graph, &root);
        assert_eq!(
            graph["domain"],
            BTreeSet::new(),
            "domain imports: {:?}",
            graph["domain"]
        );
        assert_eq!(
            graph["service"],
            BTreeSet::from(["domain".to_owned()]),
            "service imports: {:?}",
            graph["service"]
        );
        fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>) {
            assert!(!path.iter().any(|p| p == n), "import cycle: {path:?} -> {n}");
            path.push(n.to_owned());
            for d in g.get(n).into_iter().flatten() {
                visit(d, g, path);
            }
            path.pop();
        }
        for n in graph.keys() {
            visit(n, &graph, &mut Vec::new());
        }
    }
}

//! Output: a readable table on a terminal, JSON with `--json` (the API's own objects, so the
//! field names are the API's: one object, or an array for a listing).

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// How to print.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub json: bool,
}

/// A column: its heading and the field (dotted for nested) it shows.
pub type Column = (&'static str, &'static str);

fn cell(v: &Value, field: &str) -> String {
    let mut cur = v;
    for part in field.split('.') {
        cur = match cur.get(part) {
            Some(x) => x,
            None => return String::new(),
        };
    }
    match cur {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

impl Output {
    /// One object: JSON, or `field: value` lines.
    pub fn object(&self, v: &Value, columns: &[Column]) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(v).unwrap_or_default());
            return;
        }
        let width = columns.iter().map(|(h, _)| h.len()).max().unwrap_or(0);
        for (heading, field) in columns {
            let _ = writeln!(out, "{heading:<width$}  {}", cell(v, field));
        }
    }

    /// A listing: a JSON array, or a table.
    pub fn table(&self, rows: &[Value], columns: &[Column]) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(rows).unwrap_or_default());
            return;
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| columns.iter().map(|(_, f)| cell(r, f)).collect())
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, (h, _))| {
                cells
                    .iter()
                    .map(|c| c.get(i).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .max(h.len())
            })
            .collect();
        let line = |values: Vec<&str>| {
            values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let _ = writeln!(out, "{}", line(columns.iter().map(|(h, _)| *h).collect()));
        for c in &cells {
            let _ = writeln!(out, "{}", line(c.iter().map(String::as_str).collect()));
        }
        if rows.is_empty() && std::io::stdout().is_terminal() {
            let _ = writeln!(out, "(none)");
        }
    }

    /// A short confirmation (nothing with `--json`, which prints the object instead).
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }
}

//! `fleetca devices import FILE.csv`: any number of devices, in bulk requests (each all or
//! nothing on the server). Errors are reported with the CSV line they come from. A re-run
//! after an interruption skips the devices that exist already (the server names them in its
//! conflict answer; they are left out and the rest is sent again), so nothing is created
//! twice and nothing is lost.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::CliError;
use super::api::Api;
use super::output::Output;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The CSV file: a header line naming device_id, tenant, and password or ha1; optional
    /// realm and description.
    pub file: PathBuf,
    /// Check the file and report what would be sent; create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Devices per request (1 to 10000).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
}

/// One device to create and the CSV line it came from.
struct Row {
    line: u64,
    body: Value,
}

const COLUMNS: [&str; 6] = ["device_id", "tenant", "password", "ha1", "realm", "description"];

fn read(args: &ImportArgs) -> Result<(Vec<Row>, Vec<String>), CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&args.file)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?
        .clone();
    let index: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_ascii_lowercase(), i))
        .collect();
    for h in headers.iter() {
        if !COLUMNS.contains(&h.to_ascii_lowercase().as_str()) {
            return Err(CliError::Usage(format!(
                "{}: unknown column {h:?} (columns: {})",
                args.file.display(),
                COLUMNS.join(", ")
            )));
        }
    }
    for required in ["device_id", "tenant"] {
        if !index.contains_key(required) {
            return Err(CliError::Usage(format!(
                "{}: the header line names no {required} column",
                args.file.display()
            )));
        }
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mut body = serde_json::Map::new();
        for column in COLUMNS {
            if let Some(v) = index.get(column).and_then(|i| record.get(*i)).filter(|v| !v.is_empty()) {
                body.insert(column.to_owned(), json!(v));
            }
        }
        for required in ["device_id", "tenant"] {
            if !body.contains_key(required) {
                problems.push(format!("line {line}: {required} is empty"));
            }
        }
        if body.contains_key("password") && body.contains_key("ha1") {
            problems.push(format!("line {line}: give password or ha1, not both"));
        }
        rows.push(Row {
            line,
            body: Value::Object(body),
        });
    }
    Ok((rows, problems))
}

/// Per-row errors of a bulk answer (`{row}.{field}`) as CSV lines.
fn line_errors(errors: &Value, chunk: &[&Row]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = errors {
        for (key, why) in map {
            let (row, field) = key.split_once('.').unwrap_or((key.as_str(), ""));
            let Ok(i) = row.parse::<usize>() else {
                continue;
            };
            let why = match why {
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
                other => other.to_string(),
            };
            out.push((i, format!("{field}: {why}")));
            let _ = chunk.get(i);
        }
    }
    out.sort();
    out
}

pub async fn run(api: &Api, args: ImportArgs, out: Output) -> Result<(), CliError> {
    if !(1..=10_000).contains(&args.batch) {
        return Err(CliError::Usage("--batch must be from 1 to 10000".into()));
    }
    let (rows, problems) = read(&args)?;
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{}: {p}", args.file.display());
        }
        return Err(CliError::Usage(format!(
            "{} line(s) of {} cannot be sent; nothing was imported",
            problems.len(),
            args.file.display()
        )));
    }
    let total = rows.len();
    if args.dry_run {
        out.note(&format!(
            "{total} device(s) in {}; nothing sent (--dry-run)",
            args.file.display()
        ));
        if out.json {
            out.object(&json!({"devices": total, "dry_run": true}), &[]);
        }
        return Ok(());
    }
    let terminal = std::io::stderr().is_terminal() && !out.json;
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} devices ({per_sec}, {eta} left) {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let (mut created, mut skipped, mut failed) = (0usize, 0usize, 0usize);
    for chunk in rows.chunks(args.batch) {
        let mut pending: Vec<&Row> = chunk.iter().collect();
        loop {
            if pending.is_empty() {
                break;
            }
            let body = Value::Array(pending.iter().map(|r| r.body.clone()).collect());
            match api.post("/api/v4/manage/devices/bulk/", &body).await {
                Ok(_) => {
                    created += pending.len();
                    break;
                }
                Err(CliError::Api {
                    status: 409,
                    errors: Some(errors),
                    ..
                }) => {
                    // Devices that exist already (an earlier, interrupted run): skip them and
                    // send the rest again.
                    let existing: Vec<usize> = line_errors(&errors, &pending).into_iter().map(|(i, _)| i).collect();
                    if existing.is_empty() {
                        return Err(CliError::Api {
                            status: 409,
                            detail: "the server refused a batch without naming its rows".into(),
                            errors: Some(errors),
                        });
                    }
                    skipped += existing.len();
                    pending = pending
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !existing.contains(i))
                        .map(|(_, r)| r)
                        .collect();
                }
                Err(CliError::Api {
                    status: 400,
                    errors: Some(errors),
                    ..
                }) => {
                    for (i, why) in line_errors(&errors, &pending) {
                        let line = pending.get(i).map_or(0, |r| r.line);
                        eprintln!("{}: line {line}: {why}", args.file.display());
                    }
                    failed += pending.len();
                    break;
                }
                Err(e) => {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    eprintln!(
                        "fleetca: stopped after {created} created and {skipped} already there of {total}; run the same command again to go on"
                    );
                    return Err(e);
                }
            }
        }
        let done = created + skipped + failed;
        match &bar {
            Some(bar) => bar.set_position(done as u64),
            None if !out.json => eprintln!("{done}/{total} devices ({created} created, {skipped} already there)"),
            None => {}
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = json!({"devices": total, "created": created, "already_there": skipped, "failed": failed});
    if out.json {
        out.object(&summary, &[]);
    } else {
        println!(
            "{created} created, {skipped} already there, {failed} failed, of {total} in {}",
            args.file.display()
        );
    }
    if failed > 0 {
        return Err(CliError::Api {
            status: 400,
            detail: format!("{failed} device(s) were refused; the lines are named above"),
            errors: None,
        });
    }
    Ok(())
}

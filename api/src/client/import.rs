//! `fleetca devices import FILE.csv` and `fleetca products devices import`: any number of devices, in bulk requests (each all or
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
    /// The CSV file, with a header line naming its columns.
    pub file: PathBuf,
    /// Check the file and report what would be sent; create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Devices per request (1 to 10000).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Lines without a password or secret get a generated one, appended to this CSV file
    /// (mode 0600) as each batch is created. Without it such lines are refused.
    #[arg(long)]
    pub secrets_out: Option<PathBuf>,
}

/// `fleetca products devices import`.
#[derive(Args, Debug)]
pub struct ProductImportArgs {
    /// The product the devices belong to.
    #[arg(long)]
    pub product: String,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// What an import creates, and how.
struct Kind {
    /// The columns a file may have.
    columns: &'static [&'static str],
    /// The columns every line must fill.
    required: &'static [&'static str],
    /// The secret columns: at most one per line; none means a generated secret.
    secrets: &'static [&'static str],
    bulk_path: String,
    /// The field of a created object holding a generated secret, and the fields saved with it.
    generated: &'static str,
    saved: &'static [&'static str],
}

fn ha1_devices() -> Kind {
    Kind {
        columns: &["device_id", "tenant", "password", "ha1", "realm", "description"],
        required: &["device_id", "tenant"],
        secrets: &["password", "ha1"],
        bulk_path: "/api/v4/manage/devices/bulk/".into(),
        generated: "password",
        saved: &["tenant", "device_id", "mqtt_username", "password", "ha1"],
    }
}

fn sign_devices(product: &str) -> Kind {
    Kind {
        columns: &["device_key", "device_secret", "description"],
        required: &["device_key"],
        secrets: &["device_secret"],
        bulk_path: format!(
            "/api/v4/manage/products/{}/devices/bulk/",
            super::commands::enc(product)
        ),
        generated: "device_secret",
        saved: &["product_key", "device_key", "mqtt_username", "device_secret"],
    }
}

/// One device to create and the CSV line it came from.
struct Row {
    line: u64,
    body: Value,
    /// No secret in the file: the server generates one.
    generated: bool,
}

fn read(kind: &Kind, args: &ImportArgs) -> Result<(Vec<Row>, Vec<String>), CliError> {
    let file = args.file.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&args.file)
        .map_err(|e| CliError::Usage(format!("{file}: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| CliError::Usage(format!("{file}: {e}")))?
        .clone();
    let index: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_ascii_lowercase(), i))
        .collect();
    for h in headers.iter() {
        if !kind.columns.contains(&h.to_ascii_lowercase().as_str()) {
            return Err(CliError::Usage(format!(
                "{file}: unknown column {h:?} (columns: {})",
                kind.columns.join(", ")
            )));
        }
    }
    for required in kind.required {
        if !index.contains_key(*required) {
            return Err(CliError::Usage(format!(
                "{file}: the header line names no {required} column"
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
        for column in kind.columns {
            if let Some(v) = index
                .get(*column)
                .and_then(|i| record.get(*i))
                .filter(|v| !v.is_empty())
            {
                body.insert((*column).to_owned(), json!(v));
            }
        }
        for required in kind.required {
            if !body.contains_key(*required) {
                problems.push(format!("line {line}: {required} is empty"));
            }
        }
        let secrets = kind.secrets.iter().filter(|c| body.contains_key(**c)).count();
        if secrets > 1 {
            problems.push(format!("line {line}: give {}, not both", kind.secrets.join(" or ")));
        }
        if secrets == 0 && args.secrets_out.is_none() {
            problems.push(format!(
                "line {line}: no {}; fill it in, or give --secrets-out FILE to receive a generated one",
                kind.secrets.join(" or ")
            ));
        }
        rows.push(Row {
            line,
            body: Value::Object(body),
            generated: secrets == 0,
        });
    }
    Ok((rows, problems))
}

/// Where generated secrets go: a CSV file opened for appending, 0600 when created.
struct SecretsFile {
    writer: csv::Writer<std::fs::File>,
}

impl SecretsFile {
    fn open(path: &std::path::Path, kind: &Kind) -> Result<Self, CliError> {
        use std::os::unix::fs::OpenOptionsExt;
        let bad = |e: std::io::Error| CliError::Usage(format!("--secrets-out {}: {e}", path.display()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(bad)?;
        let meta = file.metadata().map_err(bad)?;
        {
            use std::os::unix::fs::MetadataExt;
            if meta.mode() & 0o077 != 0 {
                return Err(CliError::Usage(format!(
                    "--secrets-out {}: others may read it (mode {:o}); chmod 600 it or name a new file",
                    path.display(),
                    meta.mode() & 0o777
                )));
            }
        }
        let empty = meta.len() == 0;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if empty {
            writer
                .write_record(kind.saved)
                .map_err(|e| CliError::Usage(format!("--secrets-out {}: {e}", path.display())))?;
        }
        Ok(Self { writer })
    }

    /// Appends the generated secrets of a created batch and makes them durable before the
    /// next batch is sent.
    fn save(&mut self, answer: &Value, kind: &Kind) -> Result<(), CliError> {
        let bad = |e: String| CliError::Usage(format!("--secrets-out: {e}"));
        let results = answer
            .get("results")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for created in results
            .iter()
            .filter(|r| r.get(kind.generated).is_some_and(Value::is_string))
        {
            let record: Vec<&str> = kind
                .saved
                .iter()
                .map(|f| created.get(*f).and_then(Value::as_str).unwrap_or_default())
                .collect();
            self.writer.write_record(&record).map_err(|e| bad(e.to_string()))?;
        }
        self.writer.flush().map_err(|e| bad(e.to_string()))?;
        self.writer.get_ref().sync_data().map_err(|e| bad(e.to_string()))
    }
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

/// `fleetca devices import`.
pub async fn run(api: &Api, args: ImportArgs, out: Output) -> Result<(), CliError> {
    import(api, &ha1_devices(), args, out).await
}

/// `fleetca products devices import`.
pub async fn run_products(api: &Api, args: ProductImportArgs, out: Output) -> Result<(), CliError> {
    import(api, &sign_devices(&args.product), args.import, out).await
}

async fn import(api: &Api, kind: &Kind, args: ImportArgs, out: Output) -> Result<(), CliError> {
    if !(1..=10_000).contains(&args.batch) {
        return Err(CliError::Usage("--batch must be from 1 to 10000".into()));
    }
    let (rows, problems) = read(kind, &args)?;
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
    let mut secrets = match &args.secrets_out {
        Some(path) if rows.iter().any(|r| r.generated) => Some(SecretsFile::open(path, kind)?),
        _ => None,
    };
    let (mut created, mut skipped, mut failed) = (0usize, 0usize, 0usize);
    // Lines without a secret that existed already: their secret is in --secrets-out from
    // the run that created them, unless that run died before its answer arrived.
    let mut skipped_generated = 0usize;
    for chunk in rows.chunks(args.batch) {
        let mut pending: Vec<&Row> = chunk.iter().collect();
        loop {
            if pending.is_empty() {
                break;
            }
            let body = Value::Array(pending.iter().map(|r| r.body.clone()).collect());
            match api.post(&kind.bulk_path, &body).await {
                Ok(answer) => {
                    if let Some(file) = secrets.as_mut() {
                        file.save(&answer, kind)?;
                    }
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
                    skipped_generated += existing
                        .iter()
                        .filter(|i| pending.get(**i).is_some_and(|r| r.generated))
                        .count();
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
    if skipped_generated > 0 {
        eprintln!(
            "fleetca: {skipped_generated} line(s) without a secret existed already; their generated secrets are in the --secrets-out file of the run that created them (rotate any that are missing)"
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

//! `fleetca devices import FILE`, `fleetca products devices import FILE` and `fleetca
//! products import FILE`: any number of devices, in bulk requests (each all or nothing on the
//! server), or of products, one request each. A file is CSV with a header line, or JSON Lines
//! (one object a line; `.jsonl`/`.ndjson`, or a first character `{`); the columns may carry
//! the names of the platforms' own exports (`productKey`, `deviceName`/`deviceKey`,
//! `deviceSecret`, `productSecret`, …). Errors are reported with the line they come from. A
//! re-run after an interruption skips what exists already (the server names it in its
//! conflict answer; it is left out and the rest is sent again), so nothing is created twice
//! and nothing is lost. Secrets read from the file are sent, never printed.

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
    /// The file: CSV with a header line naming its columns, or JSON Lines.
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
    /// The product the devices belong to; without it, each line names its own in a
    /// product_key (productKey) column, as a platform's export does.
    #[arg(long)]
    pub product: Option<String>,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// What an import creates, and how.
struct Kind {
    /// The columns a file may have.
    columns: &'static [&'static str],
    /// Other names of columns (lower case), as the platforms' exports spell them.
    aliases: &'static [(&'static str, &'static str)],
    /// The columns every line must fill.
    required: &'static [&'static str],
    /// The secret columns: at most one per line; none means a generated secret.
    secrets: &'static [&'static str],
    /// Where a batch is posted: one path, or a product's devices (`None`: each line's own
    /// product_key column).
    route: Route,
    /// The field of a created object holding a generated secret, and the fields saved with it.
    generated: &'static str,
    saved: &'static [&'static str],
}

enum Route {
    Fixed(String),
    /// A product's devices: the one given with --product, or each line's product_key.
    Products(Option<String>),
}

fn ha1_devices() -> Kind {
    Kind {
        columns: &["device_id", "tenant", "password", "ha1", "realm", "description"],
        aliases: &[],
        required: &["device_id", "tenant"],
        secrets: &["password", "ha1"],
        route: Route::Fixed("/api/v4/manage/devices/bulk/".into()),
        generated: "password",
        saved: &["tenant", "device_id", "mqtt_username", "password", "ha1"],
    }
}

/// Devices of EnOS and Alibaba products, from fleetca's columns or the platforms' exports.
fn sign_devices(product: Option<String>) -> Kind {
    Kind {
        columns: &["product_key", "device_key", "device_secret", "description"],
        aliases: &[
            ("productkey", "product_key"),
            ("devicename", "device_key"),
            ("devicekey", "device_key"),
            ("devicesecret", "device_secret"),
        ],
        required: &["device_key"],
        secrets: &["device_secret"],
        route: Route::Products(product),
        generated: "device_secret",
        saved: &["product_key", "device_key", "mqtt_username", "device_secret"],
    }
}

/// Products, from fleetca's columns or the platforms' names.
fn products() -> Kind {
    Kind {
        columns: &[
            "product_key",
            "name",
            "scheme",
            "product_secret",
            "dynamic_activation",
            "enterprise",
        ],
        aliases: &[
            ("productkey", "product_key"),
            ("productname", "name"),
            ("productsecret", "product_secret"),
            ("dynamicactivation", "dynamic_activation"),
        ],
        required: &["product_key", "name", "scheme"],
        secrets: &["product_secret"],
        route: Route::Fixed("/api/v4/manage/products/".into()),
        generated: "product_secret",
        saved: &["product_key", "product_secret"],
    }
}

/// One thing to create, the line it came from and where it goes.
struct Row {
    line: u64,
    body: Value,
    /// No secret in the file: the server generates one.
    generated: bool,
    path: String,
}

impl Kind {
    /// The canonical name of a column as a file spells it, if the kind knows it.
    fn column(&self, name: &str) -> Option<&'static str> {
        let lower = name.to_ascii_lowercase();
        self.columns
            .iter()
            .copied()
            .find(|c| *c == lower)
            .or_else(|| self.aliases.iter().find(|(a, _)| *a == lower).map(|(_, c)| *c))
    }

    fn unknown(&self, file: &std::path::Path, name: &str) -> CliError {
        CliError::Usage(format!(
            "{}: unknown column {name:?} (columns: {}; or the platforms' {})",
            file.display(),
            self.columns.join(", "),
            self.aliases.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
        ))
    }
}

/// The lines of a file as (line number, canonical column → value), empty values left out.
type Fields = (u64, HashMap<&'static str, String>);

fn is_json_lines(path: &std::path::Path) -> Result<bool, CliError> {
    use std::io::Read;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("ndjson") {
        return Ok(true);
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Ok(head
        .get(..n)
        .unwrap_or_default()
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'{'))
}

fn read_json_lines(kind: &Kind, path: &std::path::Path, problems: &mut Vec<String>) -> Result<Vec<Fields>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                problems.push(format!("line {line}: not a JSON object"));
                continue;
            }
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let mut fields = HashMap::new();
        for (name, value) in object {
            let column = kind.column(&name).ok_or_else(|| kind.unknown(path, &name))?;
            if fields.contains_key(column) {
                problems.push(format!("line {line}: two fields mean {column}"));
                continue;
            }
            let value = match value {
                Value::String(s) => s.trim().to_owned(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if !value.is_empty() {
                fields.insert(column, value);
            }
        }
        out.push((line, fields));
    }
    Ok(out)
}

fn read_csv(kind: &Kind, path: &std::path::Path, problems: &mut Vec<String>) -> Result<Vec<Fields>, CliError> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| CliError::Usage(format!("{file}: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| CliError::Usage(format!("{file}: {e}")))?
        .clone();
    let mut columns = Vec::new();
    for h in headers.iter() {
        let column = kind.column(h).ok_or_else(|| kind.unknown(path, h))?;
        if columns.contains(&column) {
            return Err(CliError::Usage(format!("{file}: two columns mean {column}")));
        }
        columns.push(column);
    }
    for required in kind.required {
        if !columns.contains(required) {
            return Err(CliError::Usage(format!(
                "{file}: the header line names no {required} column"
            )));
        }
    }
    let mut out = Vec::new();
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
        let fields = columns
            .iter()
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| (*c, v.to_owned()))
            .collect();
        out.push((line, fields));
    }
    Ok(out)
}

fn read(kind: &Kind, args: &ImportArgs) -> Result<(Vec<Row>, Vec<String>), CliError> {
    let mut problems = Vec::new();
    let lines = if is_json_lines(&args.file)? {
        read_json_lines(kind, &args.file, &mut problems)?
    } else {
        read_csv(kind, &args.file, &mut problems)?
    };
    let mut rows = Vec::new();
    for (line, mut fields) in lines {
        let path = match &kind.route {
            Route::Fixed(p) => p.clone(),
            Route::Products(given) => {
                let product = match (given, fields.remove("product_key")) {
                    (Some(g), Some(p)) if *g != p => {
                        problems.push(format!("line {line}: product_key {p:?} is not --product {g:?}"));
                        continue;
                    }
                    (Some(g), _) => g.clone(),
                    (None, Some(p)) => p,
                    (None, None) => {
                        problems.push(format!(
                            "line {line}: no product_key; give --product or a product_key (productKey) column"
                        ));
                        continue;
                    }
                };
                format!("/api/v4/manage/products/{}/devices/bulk/", super::api::enc(&product))
            }
        };
        let mut body = serde_json::Map::new();
        for (column, value) in fields {
            body.insert(column.to_owned(), json!(value));
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
            path,
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
    import(api, &sign_devices(args.product), args.import, out).await
}

/// A product line's body as the API takes it: `dynamic_activation` a boolean.
fn product_body(row: &Row) -> Result<Value, String> {
    let mut body = row.body.clone();
    if let Some(v) = body.get_mut("dynamic_activation") {
        let flag = match v.as_str().unwrap_or_default().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => return Err(format!("dynamic_activation: {other:?} is not true or false")),
        };
        *v = json!(flag);
    }
    Ok(body)
}

/// `fleetca products import`: each product one request (all or nothing); a product that
/// exists already is left alone, so a re-run goes on where an interrupted one stopped.
pub async fn run_product_import(api: &Api, args: ImportArgs, out: Output) -> Result<(), CliError> {
    let kind = products();
    let (rows, mut problems) = read(&kind, &args)?;
    let mut bodies = Vec::new();
    for row in &rows {
        match product_body(row) {
            Ok(b) => bodies.push(b),
            Err(why) => problems.push(format!("line {}: {why}", row.line)),
        }
    }
    refuse(&args, &problems)?;
    let total = rows.len();
    if args.dry_run {
        out.note(&format!(
            "{total} product(s) in {}; nothing sent (--dry-run)",
            args.file.display()
        ));
        if out.json {
            out.object(&json!({"products": total, "dry_run": true}), &[]);
        }
        return Ok(());
    }
    let mut secrets = match &args.secrets_out {
        Some(path) if rows.iter().any(|r| r.generated) => Some(SecretsFile::open(path, &kind)?),
        _ => None,
    };
    let (mut created, mut skipped, mut failed) = (0usize, 0usize, 0usize);
    for (row, body) in rows.iter().zip(bodies) {
        match api.post(&row.path, &body).await {
            Ok(answer) => {
                if let Some(file) = secrets.as_mut() {
                    file.save(&json!({"results": [answer]}), &kind)?;
                }
                created += 1;
            }
            Err(CliError::Api { status: 409, .. }) => skipped += 1,
            Err(CliError::Api {
                status: 400,
                detail,
                errors,
            }) => {
                let why = errors
                    .as_ref()
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(field, why)| format!("{field}: {why}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or(detail);
                eprintln!("{}: line {}: {why}", args.file.display(), row.line);
                failed += 1;
            }
            Err(e) => {
                eprintln!(
                    "fleetca: stopped after {created} created and {skipped} already there of {total}; run the same command again to go on"
                );
                return Err(e);
            }
        }
    }
    finish(&args, out, "products", total, created, skipped, failed)
}

/// Refuses a file with lines that cannot be sent, naming them.
fn refuse(args: &ImportArgs, problems: &[String]) -> Result<(), CliError> {
    if problems.is_empty() {
        return Ok(());
    }
    for p in problems {
        eprintln!("{}: {p}", args.file.display());
    }
    Err(CliError::Usage(format!(
        "{} line(s) of {} cannot be sent; nothing was imported",
        problems.len(),
        args.file.display()
    )))
}

/// The summary line (or object), and an error when lines were refused.
fn finish(
    args: &ImportArgs,
    out: Output,
    what: &str,
    total: usize,
    created: usize,
    skipped: usize,
    failed: usize,
) -> Result<(), CliError> {
    let summary = json!({what: total, "created": created, "already_there": skipped, "failed": failed});
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
            detail: format!("{failed} {what} were refused; the lines are named above"),
            errors: None,
        });
    }
    Ok(())
}

async fn import(api: &Api, kind: &Kind, args: ImportArgs, out: Output) -> Result<(), CliError> {
    if !(1..=10_000).contains(&args.batch) {
        return Err(CliError::Usage("--batch must be from 1 to 10000".into()));
    }
    let (rows, problems) = read(kind, &args)?;
    refuse(&args, &problems)?;
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
    for chunk in batches(&rows, args.batch) {
        let path = chunk.first().map(|r| r.path.clone()).unwrap_or_default();
        let mut pending: Vec<&Row> = chunk.iter().collect();
        loop {
            if pending.is_empty() {
                break;
            }
            let body = Value::Array(pending.iter().map(|r| r.body.clone()).collect());
            match api.post(&path, &body).await {
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
    if skipped_generated > 0 {
        eprintln!(
            "fleetca: {skipped_generated} line(s) without a secret existed already; their generated secrets are in the --secrets-out file of the run that created them (rotate any that are missing)"
        );
    }
    finish(&args, out, "devices", total, created, skipped, failed)
}

/// Runs of consecutive rows bound for the same path, at most `size` each.
fn batches(rows: &[Row], size: usize) -> Vec<&[Row]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        let boundary =
            i == rows.len() || i - start == size || rows.get(i).map(|r| &r.path) != rows.get(start).map(|r| &r.path);
        if boundary && i > start {
            out.push(rows.get(start..i).unwrap_or_default());
            start = i;
        }
    }
    out
}

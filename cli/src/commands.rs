//! The client commands.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::api::{Api, api, enc, put};
use super::output::{Column, Output};
use super::{
    CertsCommand, CliError, ClientArgs, DevicePasswordArgs, DevicesCommand, Group, KeysCommand, LoginArgs,
    ProductsCommand, SignPasswordArgs, profile,
};

/// The commands that talk to a running fleetca (or compute a device's password).
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Store fleetca's URL and your token in ~/.config/fleetca/config.toml (mode 0600). Asks for
    /// the token on a terminal, or reads it from standard input.
    Login(LoginArgs),
    /// Who the stored token (or FLEETCA_TOKEN) is.
    Whoami(ClientArgs),
    /// API keys: create, list, show, rotate, deactivate.
    Keys(Group<KeysCommand>),
    /// MQTT client certificates: create (files written), list, revoke, renew.
    Certs(Group<CertsCommand>),
    /// HA1 devices: create, list, show, disable, enable, rotate, delete, import a CSV.
    Devices(Group<DevicesCommand>),
    /// Products of the EnOS and Alibaba families and their devices (import a CSV too).
    Products(Group<ProductsCommand>),
    /// Print the MQTT password of an HA1 device (signature of the time with its HA1).
    DevicePassword(DevicePasswordArgs),
    /// Print the MQTT client id, username and password of an EnOS or Alibaba device.
    SignPassword(SignPasswordArgs),
    /// Renew a certificate over EST with itself (mTLS) once two thirds of its lifetime have
    /// passed; --daemon keeps doing so, --exec runs a hook after each renewal.
    Renew(super::renew::RenewArgs),
}

impl ClientCommand {
    fn output(&self) -> Output {
        let args = match self {
            ClientCommand::Login(a) => a.output,
            ClientCommand::Whoami(a) => *a,
            ClientCommand::Keys(g) => g.output,
            ClientCommand::Certs(g) => g.output,
            ClientCommand::Devices(g) => g.output,
            ClientCommand::Products(g) => g.output,
            ClientCommand::DevicePassword(a) => a.output,
            ClientCommand::SignPassword(a) => a.output,
            ClientCommand::Renew(a) => a.output,
        };
        Output { json: args.json }
    }
}

/// Runs a client command; prints errors and returns the exit code.
pub async fn run(command: ClientCommand) -> ExitCode {
    let out = command.output();
    match dispatch(command, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetca: {}", e.message());
            e.exit_code()
        }
    }
}

const KEY_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("USERNAME", "username"),
    ("ENTERPRISE", "enterprise"),
    ("ACTIVE", "is_active"),
    ("CREATED", "created_at"),
];
const CERT_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("KIND", "kind"),
    ("STATUS", "status"),
    ("SERIAL", "serial"),
    ("EXPIRES", "expires_at"),
];
const DEVICE_COLUMNS: &[Column] = &[
    ("TENANT", "tenant"),
    ("DEVICE_ID", "device_id"),
    ("ACTIVE", "is_active"),
    ("MQTT_USERNAME", "mqtt_username"),
    ("CREATED", "created_at"),
];

/// A string field of an API object ("?" when missing).
pub(super) fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("?")
}

async fn dispatch(command: ClientCommand, out: Output) -> Result<(), CliError> {
    match command {
        ClientCommand::Login(a) => login(a, out).await,
        ClientCommand::Whoami(_) => {
            let me = api()?.get("/api/v4/auth/whoami").await?;
            out.object(
                &me,
                &[
                    ("USERNAME", "username"),
                    ("ROLE", "role"),
                    ("ENTERPRISE", "enterprise"),
                    ("ID", "id"),
                ],
            );
            Ok(())
        }
        ClientCommand::Keys(g) => keys(g.command, out).await,
        ClientCommand::Certs(g) => certs(g.command, out).await,
        ClientCommand::Devices(g) => devices(g.command, out).await,
        ClientCommand::Products(g) => super::products::run(g.command, out).await,
        ClientCommand::DevicePassword(a) => device_password(a, out),
        ClientCommand::SignPassword(a) => sign_password(a, out),
        ClientCommand::Renew(a) => super::renew::run(a, out).await,
    }
}

async fn login(a: LoginArgs, out: Output) -> Result<(), CliError> {
    if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
        return Err(CliError::Usage("--url must start with https:// (or http://)".into()));
    }
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("API token: ").map_err(|e| CliError::Usage(format!("reading the token: {e}")))?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Usage(format!("reading the token from standard input: {e}")))?;
        s
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage("no token given".into()));
    }
    let ca_file = match a.ca_file {
        Some(p) => {
            Some(std::fs::canonicalize(&p).map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", p.display())))?)
        }
        None => None,
    };
    let api = Api::new(&a.url, Some(token.clone()), ca_file.as_deref())?;
    let me = api.get("/api/v4/auth/whoami").await?;
    let path = profile::save(&profile::Profile {
        url: Some(api.base().to_owned()),
        token: Some(token),
        ca_file,
    })?;
    out.note(&format!(
        "signed in to {} as {} ({}); saved in {}",
        api.base(),
        text(&me, "username"),
        text(&me, "role"),
        path.display()
    ));
    if out.json {
        out.object(&me, &[]);
    }
    Ok(())
}

/// An API key by username or id.
async fn key_id(api: &Api, key: &str) -> Result<String, CliError> {
    if uuid::Uuid::parse_str(key).is_ok() {
        return Ok(key.to_owned());
    }
    let found = api
        .list_all(&format!(
            "/api/v4/manage/users/?is_service_account=true&search={}",
            enc(key)
        ))
        .await?;
    found
        .iter()
        .find(|u| u["username"] == key)
        .and_then(|u| u["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Api {
            status: 404,
            detail: format!("No API key named {key:?} in your scope."),
            errors: None,
        })
}

async fn keys(cmd: KeysCommand, out: Output) -> Result<(), CliError> {
    let api = api()?;
    match cmd {
        KeysCommand::Create { username, enterprise } => {
            let mut body = json!({"username": username, "is_service_account": true});
            if let Some(e) = enterprise {
                put(&mut body, "enterprise", json!(e));
            }
            let created = api.post("/api/v4/manage/users/", &body).await?;
            out.object(
                &created,
                &[
                    ("ID", "id"),
                    ("USERNAME", "username"),
                    ("ENTERPRISE", "enterprise"),
                    ("TOKEN", "token"),
                ],
            );
            out.note("The token is shown only now: store it.");
        }
        KeysCommand::List { enterprise, search } => {
            let mut path = "/api/v4/manage/users/?is_service_account=true".to_owned();
            if let Some(e) = enterprise {
                path.push_str(&format!("&enterprise={}", enc(&e)));
            }
            if let Some(s) = search {
                path.push_str(&format!("&search={}", enc(&s)));
            }
            out.table(&api.list_all(&path).await?, KEY_COLUMNS);
        }
        KeysCommand::Show { key } => {
            let id = key_id(&api, &key).await?;
            out.object(&api.get(&format!("/api/v4/manage/users/{id}/")).await?, KEY_COLUMNS);
        }
        KeysCommand::Rotate { key } => {
            let id = key_id(&api, &key).await?;
            let rotated = api
                .post(&format!("/api/v4/manage/users/{id}/rotate-token/"), &json!({}))
                .await?;
            out.object(&rotated, &[("ID", "id"), ("USERNAME", "username"), ("TOKEN", "token")]);
            out.note("The new token is shown only now; the old one no longer works.");
        }
        KeysCommand::Deactivate { key } => {
            let id = key_id(&api, &key).await?;
            let user = api
                .patch(&format!("/api/v4/manage/users/{id}/"), &json!({"is_active": false}))
                .await?;
            out.object(&user, KEY_COLUMNS);
            out.note("Deactivated; its certificates are revoked.");
        }
    }
    Ok(())
}

/// `1y`, `2y`, `8760h`, `30d` as hours.
fn hours(text: &str) -> Result<i64, CliError> {
    let bad = || CliError::Usage(format!("{text:?}: give a duration like 1y, 30d or 8760h"));
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let per = match unit {
        "y" => 8760,
        "d" => 24,
        "h" => 1,
        _ => return Err(bad()),
    };
    n.checked_mul(per).filter(|h| *h > 0).ok_or_else(bad)
}

/// Writes `files` into `dir` (created), refusing to replace one unless `force`. Keys get 0600.
fn write_files(dir: &Path, files: &[(&str, String, u32)], force: bool) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::Usage(format!("{}: {e}", dir.display())))?;
    if !force {
        for (name, _, _) in files {
            let p = dir.join(name);
            if p.exists() {
                return Err(CliError::Usage(format!(
                    "{} exists; give --force to replace it",
                    p.display()
                )));
            }
        }
    }
    for (name, contents, mode) in files {
        let p = dir.join(name);
        crate::files::replace(&p, contents.as_bytes(), *mode)
            .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

/// client.crt is the certificate followed by its intermediates (`chain_pem`): a file the
/// client presents whole. ca.crt is the root it chains to.
fn certificate_files(issued: &Value) -> Vec<(&'static str, String, u32)> {
    let text = |field: &str| issued[field].as_str().unwrap_or_default().to_owned();
    let mut files = vec![
        ("client.crt", text("certificate_pem") + &text("chain_pem"), 0o644),
        ("ca.crt", text("ca_certificate_pem"), 0o644),
    ];
    if let Some(key) = issued["private_key_pem"].as_str() {
        files.push(("client.key", key.to_owned(), 0o600));
    }
    files
}

fn read_csr(path: Option<&Path>) -> Result<Option<String>, CliError> {
    path.map(|p| std::fs::read_to_string(p).map_err(|e| CliError::Usage(format!("--csr {}: {e}", p.display()))))
        .transpose()
}

async fn certs(cmd: CertsCommand, out: Output) -> Result<(), CliError> {
    let api = api()?;
    match cmd {
        CertsCommand::Create {
            key,
            csr,
            validity,
            name,
            out: dir,
            force,
        } => {
            let validity_hours = hours(&validity)?;
            let csr_pem = read_csr(csr.as_deref())?;
            // Refuse before asking fleetca for a key that could then not be written.
            if !force {
                for f in ["client.crt", "ca.crt", "client.key"] {
                    if dir.join(f).exists() {
                        return Err(CliError::Usage(format!(
                            "{} exists; give --force to replace it",
                            dir.join(f).display()
                        )));
                    }
                }
            }
            let id = key_id(&api, &key).await?;
            let mut body = json!({"name": name.unwrap_or_else(|| key.clone()), "api_key_id": id, "validity_hours": validity_hours});
            if let Some(csr) = csr_pem {
                put(&mut body, "csr_pem", json!(csr));
            }
            let issued = api.post("/api/v4/manage/mqtt-certificates/", &body).await?;
            write_files(&dir, &certificate_files(&issued), true)?;
            let mut shown = issued.clone();
            if let Some(obj) = shown.as_object_mut() {
                obj.remove("private_key_pem");
            }
            out.object(&shown, CERT_COLUMNS);
            out.note(&format!(
                "wrote client.crt, ca.crt{} to {}",
                if issued.get("private_key_pem").is_some_and(Value::is_string) {
                    " and client.key (0600)"
                } else {
                    ""
                },
                dir.display()
            ));
        }
        CertsCommand::List {
            key,
            expiring_within,
            kind,
        } => {
            let mut path = "/api/v4/manage/mqtt-certificates/?".to_owned();
            if let Some(k) = key {
                path.push_str(&format!("api_key_id={}&", key_id(&api, &k).await?));
            }
            if let Some(w) = expiring_within {
                let days = (hours(&w)? + 23) / 24;
                path.push_str(&format!("expiring_within_days={days}&"));
            }
            if let Some(k) = kind {
                path.push_str(&format!("kind={}&", enc(&k)));
            }
            let path = path.trim_end_matches(['&', '?']).to_owned();
            out.table(&api.list_all(&path).await?, CERT_COLUMNS);
        }
        CertsCommand::Revoke { ids, key, reason } => match (ids.as_slice(), key) {
            ([id], None) => {
                let revoked = api
                    .post(
                        &format!("/api/v4/manage/mqtt-certificates/{}/revoke/", enc(id)),
                        &json!({"reason": reason}),
                    )
                    .await?;
                out.object(&revoked, CERT_COLUMNS);
            }
            (_, key) => {
                let body = match key {
                    Some(k) => json!({"api_key_id": key_id(&api, &k).await?, "reason": reason}),
                    None => json!({"ids": ids, "reason": reason}),
                };
                let done = api.post("/api/v4/manage/mqtt-certificates/revoke/", &body).await?;
                let count = done.get("revoked").and_then(Value::as_array).map_or(0, Vec::len);
                let already = done.get("already_revoked").and_then(Value::as_u64).unwrap_or(0);
                if out.json {
                    out.object(&done, &[]);
                } else {
                    println!("{count} revoked, {already} revoked already");
                }
            }
        },
        CertsCommand::Renew {
            id,
            csr,
            out: dir,
            force,
        } => {
            let mut body = json!({});
            if let Some(csr) = read_csr(csr.as_deref())? {
                put(&mut body, "csr_pem", json!(csr));
            }
            if !force && dir.join("client.crt").exists() {
                return Err(CliError::Usage(format!(
                    "{} exists; give --force to replace it",
                    dir.join("client.crt").display()
                )));
            }
            let renewed = api
                .post(&format!("/api/v4/manage/mqtt-certificates/{}/renew/", enc(&id)), &body)
                .await?;
            write_files(&dir, &certificate_files(&renewed), true)?;
            let mut shown = renewed.clone();
            if let Some(obj) = shown.as_object_mut() {
                obj.remove("private_key_pem");
            }
            out.object(&shown, CERT_COLUMNS);
        }
    }
    Ok(())
}

fn device_path(tenant: &str, device_id: &str) -> String {
    format!("/api/v4/manage/devices/{}/{}/", enc(tenant), enc(device_id))
}

async fn devices(cmd: DevicesCommand, out: Output) -> Result<(), CliError> {
    let api = api()?;
    match cmd {
        DevicesCommand::Create {
            device_id,
            tenant,
            credentials,
            description,
        } => {
            let mut body = json!({"device_id": device_id, "tenant": tenant});
            credentials.into_body(&mut body);
            if let Some(d) = description {
                put(&mut body, "description", json!(d));
            }
            let created = api.post("/api/v4/manage/devices/", &body).await?;
            let mut columns = DEVICE_COLUMNS.to_vec();
            if created.get("password").is_some_and(Value::is_string) {
                columns.push(("PASSWORD", "password"));
                columns.push(("HA1", "ha1"));
            }
            out.object(&created, &columns);
        }
        DevicesCommand::List { tenant, search } => {
            let mut path = "/api/v4/manage/devices/?".to_owned();
            if let Some(t) = tenant {
                path.push_str(&format!("tenant={}&", enc(&t)));
            }
            if let Some(s) = search {
                path.push_str(&format!("search={}&", enc(&s)));
            }
            let path = path.trim_end_matches(['&', '?']).to_owned();
            out.table(&api.list_all(&path).await?, DEVICE_COLUMNS);
        }
        DevicesCommand::Show { device_id, tenant } => {
            out.object(&api.get(&device_path(&tenant, &device_id)).await?, DEVICE_COLUMNS);
        }
        DevicesCommand::Disable { device_id, tenant } => {
            let d = api
                .patch(&device_path(&tenant, &device_id), &json!({"is_active": false}))
                .await?;
            out.object(&d, DEVICE_COLUMNS);
        }
        DevicesCommand::Enable { device_id, tenant } => {
            let d = api
                .patch(&device_path(&tenant, &device_id), &json!({"is_active": true}))
                .await?;
            out.object(&d, DEVICE_COLUMNS);
        }
        DevicesCommand::Rotate {
            device_id,
            tenant,
            credentials,
        } => {
            let mut body = json!({});
            credentials.into_body(&mut body);
            let rotated = api
                .put(&format!("{}credentials/", device_path(&tenant, &device_id)), &body)
                .await?;
            let mut columns = DEVICE_COLUMNS.to_vec();
            if rotated.get("password").is_some_and(Value::is_string) {
                columns.push(("PASSWORD", "password"));
                columns.push(("HA1", "ha1"));
            }
            out.object(&rotated, &columns);
        }
        DevicesCommand::Delete { device_id, tenant } => {
            api.delete(&device_path(&tenant, &device_id)).await?;
            out.note(&format!("deleted {tenant}/{device_id}"));
            if out.json {
                out.object(&json!({"tenant": tenant, "device_id": device_id, "deleted": true}), &[]);
            }
        }
        DevicesCommand::Import(a) => super::import::run(&api, a, out).await?,
    }
    Ok(())
}

fn device_password(a: DevicePasswordArgs, out: Output) -> Result<(), CliError> {
    let ha1 = match (&a.ha1, &a.device, &a.realm, &a.password) {
        (Some(h), _, _, _) if fleetca_ca::device::is_ha1(h) => h.to_ascii_lowercase(),
        (Some(_), _, _, _) => return Err(CliError::Usage("--ha1 takes 32 hex characters".into())),
        (None, Some(d), Some(r), Some(p)) => fleetca_ca::device::ha1(d, r, p),
        _ => {
            return Err(CliError::Usage(
                "give --ha1, or --device, --realm and --password".into(),
            ));
        }
    };
    let ts = a.timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let password = format!(
        "signature={}&timestamp={ts}",
        fleetca_ca::device::mqtt_signature(&ha1, ts)
    );
    if out.json {
        out.object(&json!({"password": password, "timestamp": ts}), &[]);
    } else {
        println!("{password}");
    }
    Ok(())
}

fn sign_password(a: SignPasswordArgs, out: Output) -> Result<(), CliError> {
    use fleetca_ca::sign::{SignMethod, content};
    let ts = a
        .timestamp
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
        .to_string();
    let cid = a.client_id.clone().unwrap_or_else(|| a.device_key.clone());
    let (method, method_name, securemode, key_field) = match a.scheme.as_str() {
        "enos" => (SignMethod::ENOS_DOCUMENTED, "sha256", 2, "deviceKey"),
        _ => {
            let m = SignMethod::aliyun(&a.signmethod)
                .ok_or_else(|| CliError::Usage("--signmethod: hmacsha1, hmacsha256 or hmacmd5".into()))?;
            (m, a.signmethod.as_str(), 3, "deviceName")
        }
    };
    let signed = content(&[
        ("clientId", &cid),
        (key_field, &a.device_key),
        ("productKey", &a.product_key),
        ("timestamp", &ts),
    ]);
    let login = json!({
        "client_id": format!("{cid}|securemode={securemode},signmethod={method_name},timestamp={ts}|"),
        "username": format!("{}&{}", a.device_key, a.product_key),
        "password": method.sign(&a.secret, &signed),
    });
    out.object(
        &login,
        &[
            ("CLIENT_ID", "client_id"),
            ("USERNAME", "username"),
            ("PASSWORD", "password"),
        ],
    );
    Ok(())
}

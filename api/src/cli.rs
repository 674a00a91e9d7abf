//! The command line: its definition (clap) and the offline operator commands, which build
//! only what they need (the store, the master key, the CA) and go through the same service
//! calls as the API, with the same effects.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};
use crate::domain::AuditAction;
use crate::domain::{Password, ServerCertRequest};
use crate::identity::sessions::SessionService;
use crate::pki::issuer::Issuer;
use crate::startup;
use crate::support::clock::SystemClock;

/// The server's settings, for `serve`, `server-cert`, `admin` and `audit` (hidden from the
/// client commands' help, which ignore them).
pub const SERVER_SETTINGS_HELP: &str =
    "Server settings (before or after the command; each also from its environment variable; see the README's Settings):
  --config FILE                 TOML settings file (FLEETCA_CONFIG)
  --listen ADDR                 address to listen on, default 127.0.0.1:8080 (FLEETCA_LISTEN)
  --data-dir DIR                database, master key and admin token, default ./data (FLEETCA_DATA_DIR)
  --database-url URL            sqlite://... or postgres://... (FLEETCA_DATABASE_URL)
  --database-max-connections N  pool size (FLEETCA_DATABASE_MAX_CONNECTIONS)
  --public-url URL              where clients and brokers reach fleetca (FLEETCA_PUBLIC_URL)
  --log-format text|json        (FLEETCA_LOG_FORMAT)
  --crl-file FILE               write every CRL here (FLEETCA_CRL_FILE)
  --crl-reload-command CMD      run after each CRL write (FLEETCA_CRL_RELOAD_COMMAND)
  --broker-allow CIDRS          who may call /broker/* (FLEETCA_BROKER_ALLOW)
  --mqtt-url URL                broker for EnOS activation messages (FLEETCA_MQTT_URL)
  --tls-listen ADDR             also serve HTTPS here (FLEETCA_TLS_LISTEN)";

const CLIENT_HELP: &str =
    "Client commands talk to a running fleetca: `fleetca login --url URL` first (or set FLEETCA_URL and FLEETCA_TOKEN).
Exit codes: 0 success, 1 usage, 2 the API refused (its message is printed), 3 network.";

#[derive(Parser, Debug)]
#[command(
    name = "fleetca",
    version,
    about = "Certificate authority and credential service for MQTT device fleets",
    after_help = CLIENT_HELP,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (the default).
    #[command(after_help = SERVER_SETTINGS_HELP)]
    Serve,
    /// Issue a TLS server certificate for an MQTT broker, signed by fleetca's CA, and
    /// write server.crt, server.key and ca.crt into --out.
    ServerCert(ServerCertArgs),
    /// The certificate authorities: list them, add an issuing intermediate under your own
    /// root.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Administrative commands.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A consistent copy of the SQLite database, taken while fleetca runs (on PostgreSQL:
    /// says what to run instead).
    Backup(BackupArgs),
    /// Replaces the SQLite database with a backup, fleetca stopped: refused unless the master
    /// key opens the backup's CA and its audit chain verifies. At the next start fleetca
    /// revokes again what it had published since (see the README's "Backups and restore").
    Restore(RestoreArgs),
    #[command(flatten)]
    Client(fleetca_cli::ClientCommand),
    /// Print shell completions: fleetca completions bash > /etc/bash_completion.d/fleetca
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): fleetca manpage > fleetca.1
    #[command(hide = true)]
    Manpage,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup `fleetca backup` wrote.
    pub file: PathBuf,
}

use fleetca_storage::sqlite_path;

const POSTGRES_BACKUP: &str = "on PostgreSQL, back up with pg_dump --format=custom and restore with pg_restore \
(every instance stopped); fleetca checks the database against the CRL each instance last published when it starts \
and revokes again what a restored database forgot";

/// `fleetca backup --out FILE`.
pub async fn backup(config: Config, args: BackupArgs) -> Result<(), String> {
    if sqlite_path(&config.database_url).is_none() {
        return Err(POSTGRES_BACKUP.into());
    }
    if args.out.exists() {
        return Err(format!("{} exists; name a new file", args.out.display()));
    }
    let store = startup::connect(&config).await.map_err(|e| e.to_string())?;
    let number = store.crl_number(1).await.map_err(|e| e.to_string())?;
    {
        // Made empty and 0600 first (VACUUM INTO fills an empty file), so the copy of the
        // sealed keys and hashes is never readable by others, not even while it is written.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&args.out)
            .map_err(|e| format!("{}: {e}", args.out.display()))?;
    }
    if let Err(e) = store.backup_sqlite(&args.out).await {
        let _ = std::fs::remove_file(&args.out);
        return Err(e.to_string());
    }
    println!(
        "backed up to {} (CRL number {number}); it holds sealed secrets: keep it as safe as the master key, but apart from it",
        args.out.display()
    );
    Ok(())
}

/// `fleetca restore FILE`.
pub async fn restore(config: Config, args: RestoreArgs) -> Result<(), String> {
    let Some(db) = sqlite_path(&config.database_url) else {
        return Err(POSTGRES_BACKUP.into());
    };
    let _lock = startup::lock_data_dir(&config.data_dir, true)?;
    let master = std::sync::Arc::new(startup::load_master_key(&config).map_err(|e| e.to_string())?);
    // Checked as a copy beside the database (the backup file itself is left as it is);
    // that copy, synced, is then renamed over the database: a crash leaves the old database
    // or the new one.
    let staged = db.with_extension("db.restoring");
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(&args.file, &staged).map_err(|e| format!("copying to {}: {e}", staged.display()))?;
    let checked = check_backup(&config, &master, &staged, &args.file).await;
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", staged.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        if side.exists() {
            std::fs::remove_file(&side).map_err(|e| format!("{}: {e}", side.display()))?;
        }
    }
    std::fs::rename(&staged, &db).map_err(|e| format!("{}: {e}", db.display()))?;
    if let Some(dir) = db.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    println!(
        "restored {} into {}; at its next start fleetca revokes again whatever it had published since, numbers its next CRL above the last one, and shows the repair on /readyz until an admin acknowledges it",
        args.file.display(),
        db.display()
    );
    Ok(())
}

/// The checks a backup must pass before it replaces the database: the master key opens its
/// CA, its audit chain verifies, and fleetca's published CRL record (if any) is that CA's.
async fn check_backup(
    config: &Config,
    master: &std::sync::Arc<fleetca_ca::MasterKey>,
    staged: &Path,
    original: &Path,
) -> Result<(), String> {
    let shown = original.display();
    let backup = fleetca_storage::Store::connect(&fleetca_storage::StoreOptions {
        url: format!("sqlite://{}", staged.display()),
        max_connections: 1,
    })
    .await
    .map_err(|e| format!("{shown}: not a fleetca database ({e})"))?;
    let stored = backup
        .load_authority()
        .await
        .map_err(|e| format!("{shown}: not a fleetca database ({e})"))?
        .ok_or_else(|| format!("{shown}: holds no CA"))?;
    let ca = fleetca_ca::Authority::load(&stored.certificate_pem, &stored.sealed_key, master).map_err(|_| {
        format!("{shown}: the master key cannot open this backup's CA (another installation's backup, or another master key)")
    })?;
    match backup.verify_audit().await.map_err(|e| e.to_string())? {
        Ok(n) => println!("the backup's audit log is intact: {n} records"),
        Err(broken) => {
            return Err(format!(
                "{shown}: its audit log is broken at record {}: {}; not restored",
                broken.seq, broken.why
            ));
        }
    }
    let record = config.data_dir.join(crate::pki::published::RECORD_FILE);
    if let Ok(der) = std::fs::read(&record)
        && ca.read_crl(&der).is_err()
    {
        return Err(format!(
            "{} was published by another CA than this backup's; not restored",
            record.display()
        ));
    }
    // Every other CA fleetca published a CRL of must be in the backup, with its key: a
    // backup from before an intermediate was added would lose the intermediate's key for
    // good, and every certificate it signed with it.
    let others = crate::pki::published::other_records(&config.data_dir);
    if !others.is_empty() {
        let rows = backup.authorities().await.unwrap_or_default();
        // A CA whose key a token holds is opened in the token (the configured one must hold
        // it); one whose key is sealed, with the master key.
        let token = match &config.pkcs11 {
            Some(settings) if rows.iter().any(|r| r.key_label.is_some()) => {
                Some(fleetca_ca::token::Token::open(settings.clone()).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let keys = crate::pki::authorities::Keys {
            master: master.clone(),
            token,
            algorithm: config.ca_key_algorithm,
        };
        for (id, path) in others {
            let row = rows.iter().find(|r| r.id == id && !r.certificate_pem.is_empty());
            if let Some(r) = row
                && r.key_label.is_some()
                && keys.token.is_none()
            {
                return Err(format!(
                    "{shown}: CA {id}'s key is in the PKCS#11 token {:?}: set [pkcs11] to that token so the backup can be checked against it",
                    r.key_token.as_deref().unwrap_or_default()
                ));
            }
            let opened = row
                .and_then(|r| keys.open(r).ok().flatten().map(|k| (k, &r.certificate_pem)))
                .and_then(|(k, pem)| k.certified(pem).ok());
            let published = std::fs::read(&path).ok();
            let matches = opened.zip(published).is_some_and(|(ca, der)| ca.read_crl(&der).is_ok());
            if !matches {
                return Err(format!(
                    "{shown}: lacks CA {id}, whose CRL fleetca published ({}): it was taken before that CA was added; restoring it would lose that CA's key. Not restored",
                    path.display()
                ));
            }
        }
    }
    backup.close().await;
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walks the audit log's hash chain; exits 1 naming the first record that was altered,
    /// removed or inserted.
    Verify,
}

/// `fleetca audit verify`.
pub async fn audit(config: Config, cmd: AuditCommand) -> Result<(), String> {
    match cmd {
        AuditCommand::Verify => {
            // Reads only: no migration, no CA or admin made, nothing written to the database
            // it checks (and no SQLite file made where none is).
            if config.database_url.starts_with("sqlite:")
                && !sqlite_path(&config.database_url).is_some_and(|p| p.exists())
            {
                return Err(format!("no database at {}", config.database_url));
            }
            let store = startup::connect(&config).await.map_err(|e| e.to_string())?;
            let pending = store.pending_migrations().await.map_err(|e| e.to_string())?;
            if pending > 0 {
                return Err(format!(
                    "the database is {pending} migration(s) behind this fleetca; audit verify changes nothing, so start `fleetca serve` once (it migrates) or verify with the version that wrote it"
                ));
            }
            let service = crate::outbox::audit::AuditService::new(store, Arc::new(SystemClock));
            match service.verify().await.map_err(|e| e.to_string())? {
                Ok(n) => {
                    println!("audit log intact: {n} records, each chained to the one before");
                    Ok(())
                }
                Err(broken) => Err(format!(
                    "the audit log is broken at record {}: {}",
                    broken.seq, broken.why
                )),
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Every CA fleetca holds: id, role, state, subject, expiry, and whether fleetca holds
    /// its key.
    List,
    /// Add an issuing intermediate. `--new`: signed by fleetca's own root. Or, under a root
    /// fleetca never sees (bring your own root): first `--csr-out FILE` (fleetca makes the
    /// key, sealed in its database, and writes a CSR for your root to sign), then `--import
    /// CERT --root ROOT.pem` (fleetca checks the chain, the constraints and the key). Either
    /// way the intermediate stands by: after the next start of every instance it is trusted
    /// and its CRL published, and `fleetca ca activate ID` makes it issue.
    #[command(after_help = INTERMEDIATE_HELP)]
    Intermediate(IntermediateArgs),
    /// Start a root rollover (RFC 4210 §4.4): a new root beside the one above the issuing CA,
    /// and their cross-certificates. Then, as the README's "Rotating a CA" says: restart, add
    /// the new root's intermediate (`fleetca ca intermediate --new`), restart, activate it,
    /// restart; the old root retires once nothing it vouches for is valid.
    Root {
        /// The new root's common name (default: ca_common_name and the year).
        #[arg(long)]
        common_name: Option<String>,
        /// Make the new root's key in the PKCS#11 token of `[pkcs11]` under this label
        /// (never extractable); without it the key is sealed in the database.
        #[arg(long, value_name = "LABEL")]
        token_key: Option<String>,
    },
    /// The keys the PKCS#11 token of `[pkcs11]` holds: label, id, type, whether they can
    /// leave the token, and which CA uses each.
    Token,
    /// Make a standby intermediate the issuing CA (from the next start of each instance);
    /// the CA that issued until now retires, its CRL published while what it signed is valid.
    Activate {
        /// The intermediate's id (`fleetca ca list`).
        id: i32,
    },
    /// Revoke an intermediate (standing by, retiring or retired; not the issuing CA) and
    /// every unexpired certificate it signed: its root's CRL lists it from the next start,
    /// and it leaves the trust bundle.
    Revoke {
        /// The intermediate's id (`fleetca ca list`).
        id: i32,
        /// RFC 5280's reason: keyCompromise or cACompromise (its certificates are then
        /// revoked with cACompromise), superseded, cessationOfOperation, affiliationChanged,
        /// privilegeWithdrawn or unspecified.
        #[arg(long)]
        reason: String,
    },
}

const INTERMEDIATE_HELP: &str = "Signing the CSR with openssl (the extensions an issuing intermediate needs):
  printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > ext.cnf
  openssl x509 -req -in intermediate.csr -CA root.pem -CAkey root.key -days 1825 -sha256 -extfile ext.cnf -out intermediate.pem";

#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
pub struct IntermediateArgs {
    /// Make the intermediate's key and certify it with fleetca's own root.
    #[arg(long, conflicts_with_all = ["csr_out", "import", "root"])]
    pub new: bool,
    /// Make the intermediate's key and write its CSR (PEM) to FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["import", "root"])]
    pub csr_out: Option<PathBuf>,
    /// The intermediate's common name (with --new or --csr-out; default: "fleetca issuing
    /// CA <date and time>"; at most 64 characters).
    #[arg(long)]
    pub common_name: Option<String>,
    /// Keep the new intermediate's key in the PKCS#11 token of `[pkcs11]` under this label
    /// (with --new or --csr-out): made there, sensitive and never extractable, unless the
    /// token already holds a P-256 key pair with the label, which is then used.
    #[arg(long, value_name = "LABEL", conflicts_with = "import")]
    pub token_key: Option<String>,
    /// The intermediate's certificate (PEM) your root signed.
    #[arg(long, value_name = "CERT", requires = "root")]
    pub import: Option<PathBuf>,
    /// Your root's certificate (PEM).
    #[arg(long, value_name = "ROOT.pem", requires = "import")]
    pub root: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Set a human user's password (reads it from FLEETCA_NEW_PASSWORD or standard input);
    /// ends the user's sessions.
    SetPassword {
        /// The user's username.
        username: String,
    },
}

#[derive(Args, Debug)]
pub struct ServerCertArgs {
    /// DNS names for the certificate (repeatable).
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// IP addresses for the certificate (repeatable).
    #[arg(long = "ip")]
    pub ip: Vec<IpAddr>,
    /// Validity in days (1 to 3650; default 825).
    #[arg(long)]
    pub days: Option<i64>,
    /// Where to write server.crt, server.key and ca.crt.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// The broker's group (a name or a number; you must be a member of it): the files go to
    /// it, and server.key becomes readable by it (0640), so the broker's user reads the key
    /// without running anything as root.
    #[arg(long)]
    pub group: Option<String>,
}

/// Settings that flags and environment variables may set.
/// The server's settings (see the README's Settings): for `serve` and the commands that open
/// fleetca's database; the client commands ignore them.
#[derive(Args, Debug, Default)]
pub struct SettingsArgs {
    /// TOML settings file.
    #[arg(long, env = "FLEETCA_CONFIG", global = true, hide = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "FLEETCA_LISTEN", global = true, hide = true)]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, master key and admin token.
    #[arg(long, env = "FLEETCA_DATA_DIR", global = true, hide = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (sqlite://... or postgres://...).
    #[arg(long, env = "FLEETCA_DATABASE_URL", global = true, hide = true)]
    pub database_url: Option<String>,
    /// Database pool size.
    #[arg(long, env = "FLEETCA_DATABASE_MAX_CONNECTIONS", global = true, hide = true)]
    pub database_max_connections: Option<u32>,
    /// Base URL that clients and brokers reach this service at.
    #[arg(long, env = "FLEETCA_PUBLIC_URL", global = true, hide = true)]
    pub public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "FLEETCA_LOG_FORMAT", global = true, hide = true)]
    pub log_format: Option<LogFormat>,
    /// Write every new CRL to this file (PEM).
    #[arg(long, env = "FLEETCA_CRL_FILE", global = true, hide = true)]
    pub crl_file: Option<PathBuf>,
    /// Run this with `sh -c` after each CRL file write (e.g. send SIGHUP to mosquitto).
    #[arg(long, env = "FLEETCA_CRL_RELOAD_COMMAND", global = true, hide = true)]
    pub crl_reload_command: Option<String>,
    /// Comma-separated CIDRs allowed to call /broker/* (default loopback).
    #[arg(long, env = "FLEETCA_BROKER_ALLOW", global = true, hide = true)]
    pub broker_allow: Option<String>,
    /// The MQTT broker fleetca publishes EnOS activation messages to
    /// (mqtt://host:1883 or mqtts://host:8883).
    #[arg(long, env = "FLEETCA_MQTT_URL", global = true, hide = true)]
    pub mqtt_url: Option<String>,
    /// Also serve HTTPS on this address (client certificates requested, not required).
    #[arg(long, env = "FLEETCA_TLS_LISTEN", global = true, hide = true)]
    pub tls_listen: Option<SocketAddr>,
}

impl SettingsArgs {
    /// The settings the command line gave, for [`Config::resolve`].
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            database_max_connections: self.database_max_connections,
            public_url: self.public_url.clone(),
            log_format: self.log_format,
            crl_file: self.crl_file.clone(),
            crl_reload_command: self.crl_reload_command.clone(),
            broker_allow: self.broker_allow.clone(),
            mqtt_url: self.mqtt_url.clone(),
            tls_listen: self.tls_listen,
        }
    }
}

/// Writes `contents` to `path` with `mode` (see `service::files::replace`).
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    crate::support::files::replace(path, contents.as_bytes(), mode).map_err(|e| format!("{}: {e}", path.display()))
}

fn field_errors(e: crate::support::Error) -> String {
    match e {
        crate::support::Error::Invalid(errors) => errors
            .iter()
            .map(|(field, why)| format!("{field}: {}", why.join("; ")))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// `fleetca server-cert --dns broker.example --ip 127.0.0.1 --out DIR`.
pub async fn server_cert(config: Config, args: ServerCertArgs) -> Result<(), String> {
    let request = ServerCertRequest::parse(None, &args.dns, args.ip, args.days)
        .map_err(|e| field_errors(crate::support::Error::Invalid(e)).replace("dns_names:", "--dns/--ip:"))?;
    let opened = startup::open(&config).await.map_err(|e| e.to_string())?;
    let issuer = Issuer::new(
        opened.cas.clone(),
        opened.store.issue_queue(crate::pki::issuance::planner()),
        Arc::new(SystemClock),
        config.admin_enterprise.clone(),
    );
    let record = crate::outbox::audit::system(
        AuditAction::CertificateCreate,
        "certificate",
        "",
        None,
        serde_json::json!({"kind": "server", "by": "fleetca server-cert"}),
    );
    let (cert, key) = issuer
        .issue_server(&request, Some(record))
        .await
        .map_err(field_errors)?;
    let group = args
        .group
        .as_deref()
        .map(|g| crate::support::files::group_id(g).map_err(|e| format!("--group: {e}")))
        .transpose()?;
    let key_mode = if group.is_some() { 0o640 } else { 0o600 };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let write = |name: &str, contents: &str, mode: u32| {
        let path = args.out.join(name);
        crate::support::files::replace_as(&path, contents.as_bytes(), mode, group).map_err(|e| {
            let hint = group.is_some() && e.kind() == std::io::ErrorKind::PermissionDenied;
            format!(
                "{}: {e}{}",
                path.display(),
                if hint {
                    " (is this user a member of --group?)"
                } else {
                    ""
                }
            )
        })
    };
    write("server.key", &key, key_mode)?;
    // server.crt is the whole chain (the broker presents it all); ca.crt is what the
    // broker trusts for its clients: every root of fleetca's, so certificates of an old CA
    // and of a new one both verify.
    let chain = format!("{}{}", cert.certificate_pem, issuer.chain_pem());
    write("server.crt", &chain, 0o644)?;
    write("ca.crt", &opened.cas.bundle_pem(), 0o644)?;
    println!(
        "wrote server.crt, server.key (mode {key_mode:04o}{}) and ca.crt to {} (serial {})",
        args.group
            .as_deref()
            .map(|g| format!(", group {g}"))
            .unwrap_or_default(),
        args.out.display(),
        cert.serial
    );
    Ok(())
}

/// `fleetca admin set-password USERNAME` (password from FLEETCA_NEW_PASSWORD or stdin).
pub async fn admin(config: Config, cmd: AdminCommand) -> Result<(), String> {
    match cmd {
        AdminCommand::SetPassword { username } => {
            let password = match std::env::var("FLEETCA_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| format!("reading the password from standard input: {e}"))?;
                    s.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let password = Password::parse(password).map_err(|e| format!("the password {e}"))?;
            let opened = startup::open(&config).await.map_err(|e| e.to_string())?;
            let sessions = SessionService::new(opened.store, opened.hasher, Arc::new(SystemClock));
            sessions
                .reset_password(&username, password)
                .await
                .map_err(|e| match e {
                    crate::support::Error::NotFound(_) => format!("no user named {username:?}"),
                    other => other.to_string(),
                })?;
            println!("password set for {username}; the user's sessions have ended");
            Ok(())
        }
    }
}

/// `fleetca ca list` and `fleetca ca intermediate`.
pub async fn ca(config: Config, cmd: CaCommand) -> Result<(), String> {
    let opened = startup::open(&config).await.map_err(|e| e.to_string())?;
    match cmd {
        CaCommand::List => {
            println!(
                "{:<4} {:<13} {:<9} {:<5} {:<26} SUBJECT",
                "ID", "ROLE", "STATE", "KEY", "NOT AFTER"
            );
            for ca in opened.cas.all() {
                let (subject, not_after) = match ca.facts() {
                    Some((subject, not_after)) => (subject, not_after.to_rfc3339()),
                    None => ("(waiting for its certificate)".to_owned(), "-".to_owned()),
                };
                let key = match ca.authority.as_ref().map(|a| a.key_in_token()) {
                    Some(Some(_)) => "token",
                    Some(None) => "yes",
                    None if ca.state == crate::domain::CaState::Pending => "yes",
                    None => "no",
                };
                println!(
                    "{:<4} {:<13} {:<9} {:<5} {:<26} {subject}",
                    ca.id,
                    ca.role.as_str(),
                    ca.state.as_str(),
                    key,
                    not_after
                );
            }
            Ok(())
        }
        CaCommand::Root { common_name, token_key } => {
            let now = fleetca_storage::now();
            let common_name = common_name.unwrap_or_else(|| format!("{} {}", config.ca_common_name, now.format("%Y")));
            let subject = intermediate_subject(&config, Some(common_name))?;
            let validity = chrono::Duration::days(365 * i64::from(config.ca_validity_years));
            let root = crate::pki::rotation::NewRoot {
                subject: &subject,
                validity,
                key: new_key(token_key.as_deref()),
            };
            let rolled = crate::pki::rotation::rollover(
                &opened.store,
                &opened.keys(),
                root,
                &config.public_url,
                |root, new_with_old| {
                    crate::outbox::audit::system(
                        AuditAction::CaRootRollover,
                        "ca",
                        "",
                        None,
                        serde_json::json!({
                            "subject": root.subject(),
                            "fingerprint": root.fingerprint(),
                            "not_after": root.not_after(),
                            "new_with_old": new_with_old,
                            "key": token_key.as_deref().map_or(serde_json::json!("sealed"), |label| serde_json::json!({"label": label})),
                            "by": "fleetca ca root",
                        }),
                    )
                },
                now,
            )
            .await
            .map_err(field_errors)?;
            println!(
                "root CA {id} ({}) stands by with its cross-certificates{}. Restart every instance (brokers then get                  both roots from GET /ca.pem), run fleetca ca intermediate --new (signed by the new root), restart,                  fleetca ca activate <its id>, restart; the old root retires once nothing it vouches for is valid.",
                subject.common_name,
                if rolled.new_with_old {
                    ""
                } else {
                    " (old with new only: the old root's path length is below 2, so it cannot vouch for the new hierarchy; clients need the new root itself, which ca_certificate_pem and GET /ca.pem carry)"
                },
                id = rolled.id,
            );
            Ok(())
        }
        CaCommand::Token => {
            let token = opened.token.as_ref().ok_or(
                "no PKCS#11 token is configured: add [pkcs11] (module, token, pin_file or FLEETCA_PKCS11_PIN)",
            )?;
            let keys = token.keys().map_err(|e| e.to_string())?;
            let rows = opened.store.authorities().await.map_err(|e| e.to_string())?;
            println!("{}: {} key(s)", token.describe(), keys.len());
            println!(
                "{:<24} {:<34} {:<9} {:<12} USED BY",
                "LABEL", "ID", "TYPE", "EXTRACTABLE"
            );
            for key in keys {
                let used_by = rows
                    .iter()
                    .find(|r| {
                        r.key_token.as_deref() == Some(token.label()) && r.key_label.as_deref() == Some(&key.label)
                    })
                    .map_or_else(|| "-".to_owned(), |r| format!("CA {}", r.id));
                let extractable = match (key.extractable, key.never_extractable) {
                    (false, true) => "never",
                    (false, false) => "no",
                    (true, _) => "YES",
                };
                println!(
                    "{:<24} {:<34} {:<9} {:<12} {used_by}",
                    key.label, key.id, key.kind, extractable
                );
            }
            Ok(())
        }
        CaCommand::Intermediate(IntermediateArgs {
            new: true,
            common_name,
            token_key,
            ..
        }) => {
            let subject = intermediate_subject(&config, common_name)?;
            let id = crate::pki::rotation::certify_new(
                &opened.store,
                &opened.keys(),
                new_key(token_key.as_deref()),
                &subject,
                &config.public_url,
                |mut details| {
                    if let Some(fields) = details.as_object_mut() {
                        fields.insert("by".into(), "fleetca ca intermediate --new".into());
                    }
                    crate::outbox::audit::system(AuditAction::CaIntermediateRequest, "ca", "", None, details)
                },
                fleetca_storage::now(),
            )
            .await
            .map_err(field_errors)?;
            println!(
                "intermediate CA {id} ({}) is signed by fleetca's root and stands by: restart every instance (it is \
                 then trusted and its CRL published), then run fleetca ca activate {id} and restart again",
                subject.common_name
            );
            Ok(())
        }
        CaCommand::Intermediate(IntermediateArgs {
            csr_out: Some(out),
            common_name,
            token_key,
            ..
        }) => {
            if out.exists() {
                return Err(format!("{} exists; name a new file", out.display()));
            }
            let subject = intermediate_subject(&config, common_name)?;
            let requested = crate::pki::rotation::add(
                &opened.store,
                &opened.keys(),
                new_key(token_key.as_deref()),
                &subject,
                |cn| {
                    crate::outbox::audit::system(
                        AuditAction::CaIntermediateRequest,
                        "ca",
                        "",
                        None,
                        serde_json::json!({"common_name": cn, "by": "fleetca ca intermediate"}),
                    )
                },
                fleetca_storage::now(),
            )
            .await
            .map_err(field_errors)?;
            write_file(&out, &requested.csr_pem, 0o644)?;
            println!(
                "made the key of intermediate CA {} ({}) and wrote its CSR to {}; \
                 have your root sign it (see `fleetca ca intermediate --help`), then run \
                 fleetca ca intermediate --import CERT --root ROOT.pem",
                requested.id,
                token_key.as_deref().map_or_else(
                    || "sealed in fleetca's database".to_owned(),
                    |label| format!("in the PKCS#11 token, labelled {label}")
                ),
                out.display()
            );
            Ok(())
        }
        CaCommand::Intermediate(IntermediateArgs {
            import: Some(cert),
            root: Some(root),
            ..
        }) => {
            let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
            let (cert_pem, root_pem) = (read(&cert)?, read(&root)?);
            let imported = crate::pki::rotation::import(
                &opened.store,
                &opened.keys(),
                None,
                &cert_pem,
                &root_pem,
                |ca| {
                    crate::outbox::audit::system(
                        AuditAction::CaIntermediateImport,
                        "ca",
                        "",
                        None,
                        serde_json::json!({
                            "subject": ca.subject(),
                            "fingerprint": ca.fingerprint(),
                            "not_after": ca.not_after(),
                            "by": "fleetca ca intermediate",
                        }),
                    )
                },
                fleetca_storage::now(),
            )
            .await
            .map_err(field_errors)?;
            println!(
                "intermediate CA {id} ({}, valid until {}) stands by. {}Restart every instance: it is then trusted \
                 and its CRL published. Give brokers the new trust bundle (GET /ca.pem, or fleetca server-cert's \
                 ca.crt) and clients the new roots (ca_certificate_pem), then run fleetca ca activate {id} and \
                 restart again.",
                imported.subject,
                imported.not_after.to_rfc3339(),
                if imported.new_root {
                    "Its root was new to fleetca and is stored beside the others. "
                } else {
                    ""
                },
                id = imported.id,
            );
            Ok(())
        }
        CaCommand::Intermediate(_) => Err("give --new, --csr-out FILE, or --import CERT --root ROOT.pem".into()),
        CaCommand::Activate { id } => {
            let record = crate::outbox::audit::system(
                AuditAction::CaActivate,
                "ca",
                &id.to_string(),
                None,
                serde_json::json!({"by": "fleetca ca activate"}),
            );
            crate::pki::rotation::activate(&opened.store, &opened.cas, id, record, fleetca_storage::now())
                .await
                .map_err(|e| ca_error(id, e))?;
            println!(
                "CA {id} issues every new certificate from the next start of each instance: restart them all; the CA \
                 before it retires (its CRL stays published while certificates it signed are valid)"
            );
            Ok(())
        }
        CaCommand::Revoke { id, reason } => {
            let reason: fleetca_ca::crl::Reason = reason.parse().map_err(|_| {
                let names: Vec<&str> = fleetca_ca::crl::Reason::ALL.iter().map(|r| r.name()).collect();
                format!("--reason {reason:?}: give one of {}", names.join(", "))
            })?;
            let by = serde_json::json!({"by": "fleetca ca revoke"});
            let leaves = crate::outbox::audit::revocations(
                crate::outbox::audit::system(AuditAction::CertificateRevoke, "certificate", "", None, by),
                crate::pki::rotation::leaf_reason(reason).name(),
            );
            let audit = |serial: &str| {
                let details = serde_json::json!({"serial": serial, "reason": reason.name(), "by": "fleetca ca revoke"});
                crate::outbox::audit::system(AuditAction::CaRevoke, "ca", &id.to_string(), None, details)
            };
            let now = fleetca_storage::now();
            let revoked = crate::pki::rotation::revoke(&opened.store, &opened.cas, id, reason, audit, &leaves, now)
                .await
                .map_err(|e| ca_error(id, e))?;
            // Running instances hear of it from the change log, as of another instance's
            // revocations: their CRLs list the certificates and the CA, an instance still
            // issuing from it stops, and live sessions end.
            let origin = uuid::Uuid::new_v4();
            let subjects: Vec<String> = revoked.certificates.iter().map(|c| c.id.to_string()).collect();
            let told = async {
                opened.store.record_events(origin, "revoked", &subjects, now).await?;
                opened
                    .store
                    .record_event(origin, "ca_revoked", &id.to_string(), now)
                    .await
            };
            told.await
                .map_err(|e| format!("CA {id} is revoked, but running instances were not told ({e}): restart them"))?;
            println!(
                "CA {id} (serial {}) is revoked, with {} certificates it signed. Running instances list them within a \
                 second ({}); restart every instance so the trust bundle leaves the CA out.",
                revoked.serial,
                revoked.certificates.len(),
                if revoked.root_held {
                    "and its root's CRL lists the CA"
                } else {
                    "its root is yours, so list the CA's serial on your root's CRL"
                }
            );
            Ok(())
        }
    }
}

/// What a CA command's failure says: "no CA {id}", or the problem.
fn ca_error(id: i32, e: crate::support::Error) -> String {
    match e {
        crate::support::Error::NotFound(_) => format!("no CA {id}"),
        other => field_errors(other),
    }
}

/// Where `--token-key` puts a new CA key.
fn new_key(token_key: Option<&str>) -> crate::pki::authorities::NewKey<'_> {
    token_key.map_or(
        crate::pki::authorities::NewKey::Sealed,
        crate::pki::authorities::NewKey::Token,
    )
}

/// An intermediate's name (see [`crate::pki::rotation::intermediate_subject`]).
fn intermediate_subject(config: &Config, common_name: Option<String>) -> Result<fleetca_ca::CaSubject, String> {
    crate::pki::rotation::intermediate_subject(config.ca_organization.clone(), common_name, fleetca_storage::now())
        .map_err(|_| "--common-name must be 1 to 64 printable characters".to_owned())
}

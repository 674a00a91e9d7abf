//! Start-up: data directory, master key, database and migrations, the CA, the first admin,
//! the first CRL, then the HTTP server. Idempotent: a second start reuses everything.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{self, ErrorHandlers};
use actix_web::{App, HttpServer, web};
use chrono::{Duration, Utc};
use fleetca_ca::{Authority, CaError, CaSubject, MasterKey};
use fleetca_storage::authority::NewCa;
use fleetca_storage::users::NewUser;
use fleetca_storage::{StorageError, Store, StoreOptions};

use crate::app::{Dependencies, Services};
use crate::config::Config;
use crate::domain::{AuditAction, CaRole, CaState};
use crate::error::{ApiError, problemize};
use crate::identity::hashing::Hasher;
use crate::pki::authorities::Authorities;
use crate::state::AppState;
use crate::support::clock::SystemClock;

/// Why the service could not start. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database: {0}")]
    Database(String),
    #[error(
        "the master key does not open the CA key stored in the database; start with the FLEETCA_MASTER_KEY (or master.key file) that was used when the CA was created"
    )]
    WrongMasterKey,
    #[error("certificate authority: {0}")]
    Authority(String),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The minimum length of an operator-chosen bootstrap token.
pub const MIN_BOOTSTRAP_TOKEN_LEN: usize = 32;

/// What the activation publisher's MQTT password is derived under.
const PUBLISHER_CONTEXT: &str = "fleetca/mqtt-publisher/v1";

/// What every command needs: the database, migrated, the master key and the CA.
pub struct Opened {
    pub store: Store,
    pub master: Arc<MasterKey>,
    /// Every CA, and the one that issues.
    pub cas: Arc<Authorities>,
    /// The process's one argon2 gate.
    pub hasher: Arc<Hasher>,
    /// The PKCS#11 token of `[pkcs11]`, open and logged in.
    pub token: Option<Arc<fleetca_ca::token::Token>>,
    /// The algorithm of CA keys fleetca makes.
    pub algorithm: fleetca_ca::CaAlgorithm,
}

impl Opened {
    /// Where CA keys are kept.
    pub fn keys(&self) -> crate::pki::authorities::Keys {
        crate::pki::authorities::Keys {
            master: self.master.clone(),
            token: self.token.clone(),
            algorithm: self.algorithm,
        }
    }
}

/// Opens the data directory, the master key, the database (migrated), the CA and the first
/// admin, creating what does not exist yet (so an offline command works on a fresh install
/// too).
/// The lock a serving fleetca holds (shared) on its data directory, and `fleetca restore`
/// takes (exclusive): a database is never replaced under a running server.
pub const LOCK_FILE: &str = "fleetca.lock";

/// Takes the data directory's lock, shared (serving) or exclusive (restoring). The lock lasts
/// as long as the returned file is open.
pub fn lock_data_dir(data_dir: &Path, exclusive: bool) -> Result<std::fs::File, String> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let locked = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{} is in use: fleetca serves this data directory (stop it first) or another restore runs",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

pub async fn open(config: &Config) -> Result<Opened, StartError> {
    ensure_dir(&config.data_dir)?;
    let master = load_master_key(config)?;
    let store = connect(config).await?;
    // A database that already holds a CA must open with this master key before anything,
    // migrations included, touches it.
    if let Ok(Some(stored)) = store.load_authority().await
        && let Err(CaError::Unseal) = Authority::load(&stored.certificate_pem, &stored.sealed_key, &master)
    {
        return Err(StartError::WrongMasterKey);
    }
    let pending = store
        .pending_migrations()
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    store.migrate().await.map_err(|e| StartError::Database(e.to_string()))?;
    // One line; each migration's own lines are at DEBUG (sea_orm_migration's target).
    tracing::info!(
        database = %crate::config::redacted_url(&config.database_url),
        applied = pending,
        "database ready{}",
        if pending > 0 { ": migrations applied" } else { "" }
    );
    ensure_authority(config, &store, &master).await?;
    // A retiring CA none of whose certificates is valid any more is no longer needed (but a
    // root whose CRL lists an unexpired intermediate it revoked).
    let rows = store
        .authorities()
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    let keep = crate::pki::rotation::roots_listing_revoked(&rows, Utc::now());
    let retired = store
        .retire_spent(Utc::now(), &keep, |id| {
            crate::outbox::audit::system(
                AuditAction::CaRetire,
                "ca",
                &id.to_string(),
                None,
                serde_json::json!({"why": "every certificate it signed has expired"}),
            )
        })
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    for id in retired {
        tracing::info!(ca = id, "retired a CA: every certificate it signed has expired");
    }
    let token = match &config.pkcs11 {
        Some(settings) => {
            let token =
                fleetca_ca::token::Token::open(settings.clone()).map_err(|e| StartError::Authority(e.to_string()))?;
            tracing::info!(token = %settings.token, module = %settings.module.display(), "PKCS#11 token open");
            Some(token)
        }
        None => None,
    };
    let master = Arc::new(master);
    let keys = crate::pki::authorities::Keys {
        master: master.clone(),
        token: token.clone(),
        algorithm: config.ca_key_algorithm,
    };
    let cas = Authorities::load(&store, &keys, &config.public_url)
        .await
        .map_err(StartError::Authority)?;
    let issuing = cas.issuing();
    if issuing.id != 1 {
        tracing::info!(ca = issuing.id, subject = %cas.issuer().subject(), not_after = %cas.issuer().not_after(), "issuing from an intermediate");
    }
    let cas = Arc::new(cas);
    let hasher = Arc::new(Hasher::new().map_err(|e| StartError::Authority(e.to_string()))?);
    ensure_admin(config, &store, &hasher).await?;
    Ok(Opened {
        store,
        master,
        cas,
        hasher,
        token,
        algorithm: config.ca_key_algorithm,
    })
}

/// Prepares everything the server needs: opens, bootstraps the first admin, publishes a
/// first CRL and builds each service from exactly what it uses.
pub async fn prepare(config: Config) -> Result<AppState, StartError> {
    let Opened {
        store,
        master,
        cas,
        hasher,
        token,
        algorithm,
    } = open(&config).await?;
    if config.broker_trust_username_for_certificates {
        tracing::warn!(
            "broker_trust_username_for_certificates is on: a broker login with an API key's username and no password is admitted as that key's certificate client. Safe only if every broker listener that can send such a login requires a client certificate."
        );
    }
    // What a stop mid-way through replacing a published record left (see `support::files`).
    crate::support::files::remove_leftovers(&config.data_dir, crate::pki::published::RECORD_FILE);
    crate::support::files::remove_leftovers(&config.data_dir, "published-crl-{ca}.der");
    crl_folder(&config).map_err(StartError::Config)?;
    let mut policy = config.broker_policy();
    let activations = match &config.mqtt {
        Some(mqtt) => {
            let password = master.derive(PUBLISHER_CONTEXT);
            policy.publisher = Some((mqtt.username.clone(), password.clone()));
            Some(crate::brokers::activation::spawn(mqtt, &password).map_err(StartError::Config)?)
        }
        None => None,
    };
    let anchors = cas.certificates_der();
    // The TLS clients (webhook deliveries) use the process's default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if config.benchmark_baseline {
        tracing::error!(
            "FLEETCA_BENCHMARK_BASELINE=1: the audit log, webhooks and metrics are OFF. This is the benchmark's baseline; never run a real fleet like this."
        );
        fleetca_storage::audit::disable_for_benchmark();
    } else {
        // Before the services: the counters they register go to this recorder.
        crate::http::metrics::install();
    }
    let services = Services::build(Dependencies {
        store,
        master,
        cas,
        clock: Arc::new(SystemClock),
        hasher,
        broker: policy,
        crl: config.crl_settings(),
        server_enterprise: config.admin_enterprise.clone(),
        certificate_changes_per_minute: config.enterprise_certificate_changes_per_minute,
        registrations_per_minute: config.registrations_per_minute,
        activations,
        renewal: config.renewal,
        webhooks: config.webhooks.clone(),
        disconnects: config.disconnects.clone(),
        rabbitmq: config.rabbitmq.clone(),
        canary: config.canary.clone(),
        token,
        ca_key_algorithm: algorithm,
        public_url: config.public_url.clone(),
    })
    .await
    .map_err(|e| StartError::Authority(format!("first CRL: {e}")))?;
    services.crl.spawn_refresh(std::time::Duration::from_secs(
        u64::from(config.crl_refresh_hours) * 3600,
    ));
    let tls = match &config.tls {
        Some(settings) => Some(
            crate::tls::server_config(
                settings,
                &anchors,
                services.issuer.clone(),
                config.renewal.after_expiry.is_some(),
                &config.data_dir,
                &config.public_host(),
            )
            .await
            .map_err(|e| StartError::Config(format!("HTTPS listener: {e}")))?,
        ),
        None => None,
    };
    Ok(AppState { config, services, tls })
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// The HTTPS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    pub handle: ServerHandle,
    pub server: Server,
}

/// TLS handshakes in progress at once, per worker.
const TLS_HANDSHAKES_PER_WORKER: usize = 16_384;

/// Binds and starts the HTTP server (port 0 picks a free port; see [`Running::addr`]).
pub fn serve(mut state: AppState) -> Result<Running, StartError> {
    let listen = state.config.listen;
    let metrics_on = !state.config.benchmark_baseline;
    let tls = state.tls.take().zip(state.config.tls.as_ref().map(|t| t.listen));
    state.changes.spawn();
    state.renewal.spawn();
    state.webhooks.sender(state.overview.cas.expiries()).spawn();
    if let Some(worker) = state.disconnect_worker.take() {
        worker.spawn();
    }
    if let Some(worker) = state.canary_worker.take() {
        worker.spawn();
    }
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(format!("The query string is invalid: {e}.")).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| ApiError::from(crate::support::Error::NotFound("object")).into()),
            )
            // The brokers' questions first, through their own lean edge; then the rest of
            // the API, the OpenAPI document and the admin UI, through the full stack.
            .service(
                web::scope(crate::http::BROKER_SCOPE)
                    .configure(crate::http::configure_brokers)
                    .default_service(web::to(crate::http::not_found))
                    .wrap(crate::http::broker_edge::BrokerEdge { metrics: metrics_on }),
            )
            .service(
                web::scope("")
                    .configure(crate::http::configure)
                    .default_service(web::to(crate::http::ui::serve))
                    .wrap(ErrorHandlers::new().default_handler(problemize))
                    .wrap(middleware::Condition::new(
                        metrics_on,
                        middleware::from_fn(crate::http::metrics::track),
                    ))
                    .wrap(middleware::from_fn(crate::http::request_log)),
            )
    })
    .on_connect(crate::tls::on_connect)
    // TLS: a connection that sends no ClientHello holds one of the worker's handshake slots
    // until the handshake times out. With actix's defaults (256 slots, 3 s) 1,200 idle
    // connections made every HTTPS request wait 3–5 s and 5,000 time them out; a waiting
    // handshake costs a socket and a small task, so allow many and give each 2 s.
    .max_connection_rate(TLS_HANDSHAKES_PER_WORKER)
    .tls_handshake_timeout(std::time::Duration::from_secs(2))
    .shutdown_timeout(10)
    .bind(listen)
    .map_err(|source| StartError::Bind { addr: listen, source })?;
    let addr = server.addrs().first().copied().unwrap_or(listen);
    let (server, tls_addr) = match tls {
        Some((config, tls_listen)) => {
            let server = server
                .bind_rustls_0_23(tls_listen, config)
                .map_err(|source| StartError::Bind {
                    addr: tls_listen,
                    source,
                })?;
            let tls_addr = server.addrs().get(1).copied();
            (server, tls_addr)
        }
        None => (server, None),
    };
    let server = server.run();
    Ok(Running {
        addr,
        tls_addr,
        handle: server.handle(),
        server,
    })
}

fn ensure_dir(dir: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Writes a new file readable only by its owner; fails if it exists.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

pub fn load_master_key(config: &Config) -> Result<MasterKey, StartError> {
    if let Some(k) = &config.master_key {
        return MasterKey::parse(k.expose()).map_err(|e| StartError::MasterKey(format!("FLEETCA_MASTER_KEY: {e}")));
    }
    let path = config.data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text).map_err(|e| StartError::MasterKey(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate().map_err(|e| StartError::MasterKey(e.to_string()))?;
            write_private(&path, &format!("{}\n", key.to_hex()))
                .map_err(|e| StartError::MasterKey(format!("writing {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated a new master key; back it up: without it the CA key and device secrets cannot be opened");
            Ok(key)
        }
        Err(e) => Err(StartError::MasterKey(format!("reading {}: {e}", path.display()))),
    }
}

pub async fn connect(config: &Config) -> Result<Store, StartError> {
    let options = StoreOptions {
        url: config.database_url.clone(),
        max_connections: config.database_max_connections,
    };
    let mut attempt = 0u32;
    loop {
        match Store::connect(&options).await {
            Ok(store) => return Ok(store),
            Err(StorageError::Unavailable(cause)) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(%cause, attempt, "waiting for the database to become reachable");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(StartError::Database(e.to_string())),
        }
    }
}

/// Makes a new installation's CAs: a root (CA 1, path length 2, signing only
/// intermediates and its CRL) and an issuing intermediate under it (CA 2) that signs every
/// certificate; both keys sealed under the master key. An installation made before keeps its
/// one CA, which issues as it did. Then checks the master key opens CA 1.
async fn ensure_authority(config: &Config, store: &Store, master: &MasterKey) -> Result<(), StartError> {
    let ca_error = |e: CaError| StartError::Authority(e.to_string());
    let db = |e: StorageError| StartError::Database(e.to_string());
    if store.load_authority().await.map_err(db)?.is_none() {
        let now = Utc::now();
        let subject = CaSubject {
            common_name: config.ca_common_name.clone(),
            organization: config.ca_organization.clone(),
        };
        let validity = Duration::days(365 * i64::from(config.ca_validity_years));
        let root = Authority::create_root_with(&subject, now, validity, config.ca_key_algorithm).map_err(ca_error)?;
        let issuing_subject = CaSubject {
            common_name: issuing_name(&config.ca_common_name),
            organization: config.ca_organization.clone(),
        };
        let profile = fleetca_ca::IntermediateProfile {
            subject: &issuing_subject,
            validity,
            crl_url: &crate::pki::authorities::crl_url(&config.public_url, 1),
        };
        let (certified, sealed_key) = root.new_intermediate(&profile, master, now).map_err(ca_error)?;
        let root_row = NewCa {
            role: CaRole::Root.as_str().into(),
            state: CaState::Standby.as_str().into(),
            parent_id: None,
            certificate_pem: root.certificate_pem().to_owned(),
            sealed_key: root.seal_key(master).map_err(ca_error)?,
            csr_pem: None,
            in_token: None,
            cross_pem: None,
        };
        let issuing_row = NewCa {
            role: CaRole::Intermediate.as_str().into(),
            state: CaState::Active.as_str().into(),
            parent_id: Some(1),
            certificate_pem: certified.pem,
            sealed_key,
            csr_pem: None,
            in_token: None,
            cross_pem: None,
        };
        if store.insert_hierarchy(root_row, issuing_row, now).await.map_err(db)? {
            tracing::info!(root = %root.subject(), issuing = %issuing_subject.common_name, public_url = %config.public_url, "created the certificate authorities (their CRLs are named under public_url)");
        }
    }
    let stored = store
        .load_authority()
        .await
        .map_err(db)?
        .ok_or_else(|| StartError::Database("no CA stored".into()))?;
    let ca = Authority::load(&stored.certificate_pem, &stored.sealed_key, master).map_err(|e| match e {
        CaError::Unseal => StartError::WrongMasterKey,
        other => StartError::Authority(other.to_string()),
    })?;
    tracing::info!(subject = %ca.subject(), fingerprint = %ca.fingerprint(), not_after = %ca.not_after(), "certificate authority loaded");
    Ok(())
}

/// The first issuing intermediate's name, from the root's: `fleetca root CA` gives `fleetca
/// issuing CA 1`, `Acme Fleet CA` gives `Acme Fleet CA issuing 1`.
fn issuing_name(root: &str) -> String {
    let name = if root.contains("root") {
        format!("{} 1", root.replacen("root", "issuing", 1))
    } else {
        format!("{root} issuing 1")
    };
    // RFC 5280's upper bound for a common name.
    if name.chars().count() > 64 {
        "fleetca issuing CA 1".into()
    } else {
        name
    }
}

async fn ensure_admin(config: &Config, store: &Store, hasher: &Hasher) -> Result<(), StartError> {
    let db = |e: StorageError| StartError::Database(e.to_string());
    if store.count_users().await.map_err(db)? > 0 {
        return Ok(());
    }
    let (token, write_file) = match &config.bootstrap_token {
        Some(t) if t.expose().chars().count() < MIN_BOOTSTRAP_TOKEN_LEN => {
            return Err(StartError::Config(format!(
                "FLEETCA_BOOTSTRAP_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LEN} characters"
            )));
        }
        Some(t) => (hasher.token_from(t.expose().to_owned()).await, false),
        None => (hasher.new_token().await, true),
    };
    let token = token.map_err(|e| StartError::Authority(e.to_string()))?;
    let new = NewUser {
        username: "admin".into(),
        is_service_account: false,
        enterprise: config.admin_enterprise.clone(),
        role: "admin".into(),
        token_lookup: token.lookup.clone(),
        token_hash: token.hash.clone(),
        password_hash: None,
    };
    let record = crate::outbox::audit::system(
        AuditAction::UserCreate,
        "user",
        "",
        Some(&config.admin_enterprise),
        serde_json::json!({"username": "admin", "role": "admin", "bootstrap": true}),
    );
    match store.create_user(new, &[record], Utc::now()).await {
        Ok(_) => {}
        // Another instance bootstrapped at the same moment.
        Err(StorageError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(db(e)),
    }
    if write_file {
        let path = config.data_dir.join("admin-token");
        let _ = std::fs::remove_file(&path);
        write_private(&path, &format!("{}\n", token.plaintext)).map_err(|source| StartError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        tracing::info!(
            path = %path.display(),
            "created the first admin user \"admin\"; its API token is in {} (mode 0600). Open {} to choose its \
             password: the sign-in page offers a first-time set-up with that token",
            path.display(),
            config.public_url
        );
    } else {
        tracing::info!(
            "created the first admin user \"admin\" with the token from FLEETCA_BOOTSTRAP_TOKEN. Open {} to choose \
             its password: the sign-in page offers a first-time set-up with that token",
            config.public_url
        );
    }
    Ok(())
}

/// The CRL file's folder: made when missing (0750, setgid and in `crl_file_group` when one is
/// set, so the broker reads what lands there), and proven writable the way every CRL write
/// works (a temporary file, its mode and group set, renamed), or an error naming the folder,
/// the user and what to change.
fn crl_folder(config: &Config) -> Result<(), String> {
    let Some(file) = &config.crl_file else {
        return Ok(());
    };
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.to_string_lossy().contains("{ca}") {
        return Err(format!(
            "crl_file {}: {{ca}} may appear in the file's name only, not in its folder",
            file.display()
        ));
    }
    let user = crate::support::files::user_name;
    let group = config.crl_file_access.group;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "crl_file {}: {} is not a folder",
                file.display(),
                dir.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    if let Some(gid) = group {
                        std::os::unix::fs::chown(dir, None, Some(gid))?;
                    }
                    let mode = if group.is_some() { 0o2750 } else { 0o755 };
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                })
                .map_err(|e| {
                    format!(
                        "crl_file {}: its folder {} is missing and {} cannot make it: {e} (make it, or under the packaged unit add it to ReadWritePaths)",
                        file.display(),
                        dir.display(),
                        user()
                    )
                })?;
            tracing::info!(folder = %dir.display(), "made the CRL file's folder");
        }
        Err(e) => {
            return Err(format!(
                "crl_file {}: {} cannot reach its folder {}: {e}",
                file.display(),
                user(),
                dir.display()
            ));
        }
    }
    if std::fs::symlink_metadata(file).is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "crl_file {} is a folder: name a file in it (for a folder of one CRL per file, as RabbitMQ's, a name with {{ca}} in it)",
            file.display()
        ));
    }
    // What a stop mid-way through replacing the CRL files left behind.
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    crate::support::files::remove_leftovers(dir, name);
    let probe = dir.join(format!(".fleetca-probe.{}", std::process::id()));
    let access = config.crl_file_access;
    let written = crate::support::files::replace_unsynced(&probe, &[], access.mode, access.group).map(drop);
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        format!(
            "crl_file {}: {} cannot write in its folder {}{} ({e}); fleetca writes a temporary file there and renames it over the CRL file (under the packaged unit, add the folder to ReadWritePaths{})",
            file.display(),
            user(),
            dir.display(),
            group.map(|g| format!(" as group {g}")).unwrap_or_default(),
            if group.is_some() { "; and fleetca's user must be a member of crl_file_group" } else { "" }
        )
    })
}

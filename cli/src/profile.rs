//! Where the client finds fleetca and its token: `FLEETCA_URL` / `FLEETCA_TOKEN` (and
//! `FLEETCA_CA_FILE`) over `~/.config/fleetca/config.toml`, which `fleetca login` writes with
//! mode 0600 (`$XDG_CONFIG_HOME/fleetca/config.toml` when that is set).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CliError;

/// What `fleetca login` stores.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub url: Option<String>,
    pub token: Option<String>,
    /// fleetca's CA (PEM), trusted for HTTPS besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// The config file's path.
pub fn path() -> Result<PathBuf, CliError> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| CliError::Usage("neither HOME nor XDG_CONFIG_HOME is set".into()))?;
    Ok(base.join("fleetca").join("config.toml"))
}

/// The stored profile (empty when there is none).
pub fn load() -> Result<Profile, CliError> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profile::default()),
        Err(e) => Err(CliError::Usage(format!("{}: {e}", path.display()))),
    }
}

/// Writes the profile with mode 0600 (it holds a token), atomically.
pub fn save(profile: &Profile) -> Result<PathBuf, CliError> {
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Usage(format!("{}: {e}", dir.display())))?;
    }
    let text = toml::to_string(profile).map_err(|e| CliError::Usage(e.to_string()))?;
    crate::files::replace(&path, text.as_bytes(), 0o600)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// The profile with the environment over it.
pub fn effective() -> Result<Profile, CliError> {
    let mut p = load()?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = env("FLEETCA_URL") {
        p.url = Some(url);
    }
    if let Some(token) = env("FLEETCA_TOKEN") {
        p.token = Some(token);
    }
    if let Some(ca) = env("FLEETCA_CA_FILE") {
        p.ca_file = Some(PathBuf::from(ca));
    }
    Ok(p)
}

//! Replacing a file so that no reader ever sees half of it, and a secret is never readable
//! by others: a new file in the same directory, created with its final mode, written and
//! synced, renamed over the old one, and the directory synced. The CRL file, the HTTPS
//! listener's key and certificate, and `server-cert`'s output all go through here.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `contents`, the new file created with `mode` (Unix permissions),
/// synced: after a crash the file is the old one or the new one.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace_with(path, &[contents], mode, true)
}

/// As [`replace`], atomic but not synced: for a file fleetca writes again from its durable
/// state at every start before anything reads it (the brokers' CRL file, whose durable
/// copies are the database and the published records). A reader never sees half of it;
/// after a power loss it may be empty until fleetca starts (on ext4, whose default
/// `auto_da_alloc` flushes a file renamed over another, it is the old one or the new one).
/// Syncing several MiB of CRLs on every revocation cost more than the revocation itself.
pub fn replace_unsynced(path: &Path, parts: &[&[u8]], mode: u32) -> std::io::Result<()> {
    replace_with(path, parts, mode, false)
}

/// `parts`, one after another, become the file.
fn replace_with(path: &Path, parts: &[&[u8]], mode: u32, sync: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = opts.open(&tmp).and_then(|mut f| {
        for part in parts {
            f.write_all(part)?;
        }
        if sync { f.sync_all() } else { Ok(()) }
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    if sync {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_the_new_contents_and_mode_even_over_a_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fleetca-files-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
    }
}

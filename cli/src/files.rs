//! Replacing a file so that no reader ever sees half of it, and a secret is never readable
//! by others: a new file in the same directory, created with its final mode, written and
//! synced, renamed over the old one, and the directory synced. The CRL file, the HTTPS
//! listener's key and certificate, and `server-cert`'s output all go through here.
//!
//! The CRL file and the published CRL records are replaced on every revocation, and their
//! old files are not freed on the revocation's path: [`replace_unsynced`] and
//! [`replace_retiring`] hand the old file back as [`Retired`], still named, and the caller
//! frees it after answering. Freeing a file means dropping its pages and its blocks, and on
//! a filesystem mounted with `discard` a synchronous discard of every extent: for the
//! brokers' CRL file of 6.6 MB (100,000 revocations) the rename took 4–5 ms of a
//! revocation's 16, more than writing the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `contents`, the new file created with `mode` (Unix permissions),
/// synced: after a crash the file is the old one or the new one.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace_with(path, &[contents], mode, None, true, false).map(drop)
}

/// As [`replace`], the file it replaced handed back to be freed when the caller chooses.
pub fn replace_retiring(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<Retired> {
    replace_with(path, &[contents], mode, None, true, true)
}

/// As [`replace`], the new file in group `group` (a group the caller is a member of) before it
/// takes the old one's place: a broker's user in that group reads it, nobody else.
pub fn replace_as(path: &Path, contents: &[u8], mode: u32, group: Option<u32>) -> std::io::Result<()> {
    replace_with(path, &[contents], mode, group, true, false).map(drop)
}

/// As [`replace`], atomic but not synced: for a file fleetca writes again from its durable
/// state at every start before anything reads it (the brokers' CRL file, whose durable
/// copies are the database and the published records). A reader never sees half of it.
/// Syncing several MiB of CRLs on every revocation cost more than the revocation itself.
/// The file it replaced is handed back (see [`Retired`]).
///
/// On Linux with glibc the new file and the old one swap names in one step (`renameat2` with
/// `RENAME_EXCHANGE`) rather than the new one being renamed over the old: ext4 writes a file
/// renamed over another out at once (`auto_da_alloc`), and the next commit of the database
/// then waited for those megabytes (its fsync took 2 ms instead of 0.3). Swapped, a file
/// replaced again within the kernel's writeback delay (30 s) never reaches the disk at all.
/// The price: after a power loss within that delay the file may be empty until fleetca
/// starts and writes it. Brokers refuse an empty CRL file (mosquitto does not start its TLS
/// listener; RabbitMQ's hash directory finds no CRL and refuses the client) rather than
/// trusting an old one that lacks the latest revocations.
pub fn replace_unsynced(path: &Path, parts: &[&[u8]], mode: u32, group: Option<u32>) -> std::io::Result<Retired> {
    replace_with(path, parts, mode, group, false, true)
}

/// The file a replacement took the place of, still named (a hidden name of its own in the
/// same folder, `.{name}.{pid}.{n}.tmp` or `.old`) so that the replacement did not free it.
/// Dropping it removes that name, which frees the file: drop it where the time that takes is
/// nobody's wait. Names a crash left behind are removed by [`remove_leftovers`].
#[must_use = "dropping it frees the old file now; move it to where that may take its time"]
#[derive(Debug)]
pub struct Retired(Option<PathBuf>);

impl Drop for Retired {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes what replacements of the file named `pattern` in `dir` left behind when the
/// process stopped mid-way: its temporary and retired files, `.{name}.{pid}.{n}.tmp` and
/// `.old`, exactly those and nothing else in a folder other software may share. A `{ca}` in
/// `pattern` stands for what fleetca puts there (a CA's id, and for a shard `-` and its
/// number). For a process's start, before it replaces those files.
pub fn remove_leftovers(dir: &Path, pattern: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| is_leftover(n, pattern)) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether `name` is a temporary or retired file of a replacement of `pattern`'s file.
fn is_leftover(name: &str, pattern: &str) -> bool {
    let Some(base) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp").or_else(|| n.strip_suffix(".old")))
    else {
        return false;
    };
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = base.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if !(number(n) && number(pid)) {
        return false;
    }
    match pattern.split_once("{ca}") {
        None => file == pattern,
        Some((before, after)) => file
            .strip_prefix(before)
            .and_then(|f| f.strip_suffix(after))
            .is_some_and(|ca| !ca.is_empty() && ca.bytes().all(|b| b.is_ascii_digit() || b == b'-')),
    }
}

/// Each replacement's own temporary name (`.{name}.{pid}.{n}.tmp`): a [`Retired`] file left
/// at one is never another replacement's new file.
static REPLACEMENTS: AtomicU64 = AtomicU64::new(0);

/// Swaps the files at `tmp` and `path` when `path` is a regular file; false when they are
/// not swapped (no file there, a folder, a filesystem without the call): the caller renames
/// instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(tmp: &Path, path: &Path) -> bool {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
        && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RenameFlags::RENAME_EXCHANGE).is_ok()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_tmp: &Path, _path: &Path) -> bool {
    false
}

/// Links the regular file at `path`, if there is one, as `retired`; `None` when it cannot (no
/// file, or a filesystem without hard links): the rename then frees it.
fn retire(path: &Path, retired: PathBuf) -> Option<PathBuf> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        return None;
    }
    std::fs::hard_link(path, &retired).ok().map(|()| retired)
}

/// A group's id, from its name or its number (`/etc/group`).
pub fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").map_err(|e| format!("/etc/group: {e}"))?;
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let n = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            (n == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| format!("no group named {name:?} in /etc/group"))
}

/// The name of the user this process runs as (its uid when /etc/passwd does not say).
pub fn user_name() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return "this user".into();
        };
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let mut fields = line.split(':');
                    let n = fields.next()?;
                    (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| n.to_owned())
                })
            })
            .map_or_else(|| format!("uid {uid}"), |n| format!("{n} (uid {uid})"))
    }
    #[cfg(not(unix))]
    "this user".into()
}

/// `parts`, one after another, become the file; with `keep`, the old file is handed back.
fn replace_with(
    path: &Path,
    parts: &[&[u8]],
    mode: u32,
    group: Option<u32>,
    sync: bool,
    keep: bool,
) -> std::io::Result<Retired> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let n = REPLACEMENTS.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
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
        // The mode given at creation is masked by the umask (a hardened unit's is 0077); the
        // file's own mode, set here, is not.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            // A setgid folder of that group gave it already: no fchown (which a hardened unit
            // may not allow) when none is needed.
            if let Some(gid) = group
                && f.metadata()?.gid() != gid
            {
                std::os::unix::fs::fchown(&f, None, Some(gid))?;
            }
        }
        #[cfg(not(unix))]
        let _ = group;
        for part in parts {
            f.write_all(part)?;
        }
        if sync { f.sync_all() } else { Ok(()) }
    });
    if keep && !sync && written.is_ok() && exchange(&tmp, path) {
        // The old file is at `tmp` now, a name no other replacement uses.
        return Ok(Retired(Some(tmp)));
    }
    // A synced replacement's old file is linked aside only when asked for: the link would
    // outlive a crash (a secret's old file among them).
    let retired = Retired(
        written
            .as_ref()
            .ok()
            .filter(|()| keep)
            .and_then(|()| retire(path, dir.join(format!(".{name}.{}.{n}.old", std::process::id())))),
    );
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    if sync {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty folder of the test's own.
    fn fresh_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fleetca-files-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_replaced_file_has_the_new_contents_and_mode_even_over_a_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = fresh_dir();
        let path = dir.join("key.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn the_replaced_file_stays_whole_until_it_is_let_go_and_leftovers_are_swept() {
        use std::io::Read;
        let dir = fresh_dir();
        let path = dir.join("crl.pem");
        std::fs::write(&path, "old").unwrap();
        // A reader that opened the old file before the replacement.
        let mut reader = std::fs::File::open(&path).unwrap();
        // Names a crash left behind, and a file of another name.
        std::fs::write(dir.join(".crl.pem.4242.7.old"), "stale").unwrap();
        std::fs::write(dir.join(".crl.pem.4242.8.tmp"), "stale").unwrap();
        std::fs::write(dir.join(".other.4242.8.tmp"), "someone else's").unwrap();
        remove_leftovers(&dir, "crl.pem");
        assert!(dir.join(".other.4242.8.tmp").exists());
        std::fs::remove_file(dir.join(".other.4242.8.tmp")).unwrap();
        let files = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        // Swapped (Linux) or linked aside: either way the old file is whole until let go.
        let retired = replace_unsynced(&path, &[b"new"], 0o644, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mut old = String::new();
        reader.read_to_string(&mut old).unwrap();
        assert_eq!(old, "old");
        let kept = retired.0.clone().expect("the old file is handed back");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old");
        drop(retired);
        assert!(!kept.exists(), "let go, the old file is freed");
        // The synced kind links it aside.
        let retired = replace_retiring(&path, b"newer", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "newer");
        let kept = retired.0.clone().expect("the old file is handed back");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "new");
        drop(retired);
        assert_eq!(files(), ["crl.pem"], "nothing else is left");
        // Plain replacements keep nothing aside, and a folder is not swapped away.
        replace(&path, b"newest", 0o644).unwrap();
        assert_eq!(files(), ["crl.pem"]);
        std::fs::create_dir(dir.join("hashes")).unwrap();
        assert!(replace_unsynced(&dir.join("hashes"), &[b"x"], 0o644, None).is_err());
        assert!(dir.join("hashes").is_dir());
        std::fs::remove_dir(dir.join("hashes")).unwrap();
        // A first replacement has nothing to retire.
        drop(replace_unsynced(&dir.join("new.der"), &[b"x"], 0o644, None).unwrap());
        assert_eq!(files(), ["crl.pem", "new.der"]);
    }

    #[test]
    fn only_a_replacements_own_leftovers_are_recognised() {
        assert!(is_leftover(".crl.pem.123.4.tmp", "crl.pem"));
        assert!(is_leftover(".crl.pem.123.4.old", "crl.pem"));
        assert!(is_leftover(".fleetca-crl-2-15.pem.9.0.tmp", "fleetca-crl-{ca}.pem"));
        assert!(is_leftover(".2.pem.9.0.tmp", "{ca}.pem"));
        for other in [
            ".crl.pem.tmp",
            ".crl.pem.x.4.tmp",
            ".crls.pem.1.2.tmp",
            ".crl.pem.backup.1.2.old",
            "crl.pem.1.2.tmp",
            ".crl.pem.1.2.swp",
            ".other.1.2.tmp",
            ".pem.1.2.tmp",
            ".x.pem.1.2.tmp",
        ] {
            assert!(
                !is_leftover(other, "crl.pem") && !is_leftover(other, "{ca}.pem"),
                "{other}"
            );
        }
        assert!(!is_leftover(".fleetca-crl-.pem.9.0.tmp", "fleetca-crl-{ca}.pem"));
    }

    #[test]
    fn the_mode_holds_whatever_the_umask_and_a_group_can_be_given() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = fresh_dir();
        let path = dir.join("crl.pem");
        let own_group = std::fs::metadata(&dir).unwrap().gid();
        drop(replace_unsynced(&path, &[b"a", b"b"], 0o640, Some(own_group)).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), own_group);
        assert_eq!(group_id("0").unwrap(), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-here").unwrap_err().contains("no group named"));
        assert!(!user_name().is_empty());
    }
}

//! Running external programs: finding them, running one to completion with a time limit,
//! and owning a long-running one ([`Daemon`]) that is stopped when the guard drops.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Finds an external program on `PATH` or in the sbin directories (Debian installs
/// `mosquitto` in `/usr/sbin`, which is not on every `PATH`). A missing program fails the
/// test and says which package provides it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    for dir in std::env::split_paths(&path).chain(sbin) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    let package = match name {
        "mosquitto_pub" | "mosquitto_sub" => "mosquitto-clients",
        "nginx" => "nginx-light",
        other => other,
    };
    panic!(
        "the end-to-end tests need `{name}`, which is not on PATH nor in /usr/sbin: install it \
         (Debian: apt-get install -y {package}) or run scripts/test, which installs it"
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished program printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output and standard error together, for searching.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics with everything the program printed unless it exited 0; returns stdout.
    pub fn expect_success(&self, what: &str) -> &str {
        assert!(
            self.success(),
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// Runs `cmd` with standard input closed and waits at most `timeout` for it; a program
/// still running then is killed and fails the test.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    run_with_input(cmd, None, timeout)
}

/// Like [`run`], feeding `input` to standard input.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            signal(pid, "KILL");
            // A grandchild may still hold the pipes open; do not wait for it forever.
            let out = rx.recv_timeout(Duration::from_secs(5)).ok().and_then(Result::ok);
            panic!(
                "{shown} did not finish within {timeout:?}; killed it. It printed:\n{}",
                out.map(|o| format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ))
                .unwrap_or_default()
            );
        }
    };
    let out = out.unwrap_or_else(|e| panic!("waiting for {shown}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a shell command line with `sh -c` in `dir` with extra environment variables.
pub fn sh(script: &str, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, Duration::from_secs(60))
}

/// Sends a signal by name (`TERM`, `HUP`, `KILL`) with the shell's `kill`.
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A long-running program whose standard output and error go to files. Dropping the guard
/// stops it (SIGTERM, then SIGKILL after 5 s) and reaps it, so no test leaves an orphan; if
/// the test is failing, the guard prints the end of the program's log first.
pub struct Daemon {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `cmd` with standard input closed, standard output to `{log_stem}.stdout` and
    /// standard error to `{log_stem}.stderr`.
    pub fn spawn(name: &str, cmd: &mut Command, log_stem: &Path) -> Self {
        let stdout = log_stem.with_extension("stdout");
        let stderr = log_stem.with_extension("stderr");
        let create = |p: &Path| File::create(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        cmd.stdin(Stdio::null()).stdout(create(&stdout)).stderr(create(&stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it exited, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap_or(None);
        }
        self.status
    }

    /// Waits at most `timeout` for it to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits at most `timeout`; `None` if it is still running (the drop
    /// guard will then kill it).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        signal(self.pid(), "TERM");
        self.wait_exit(timeout)
    }

    /// What it has written to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// What it has written to standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The last `lines` lines of standard output and error, labelled, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let tail = |text: String| {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        };
        format!(
            "--- {} stdout ({})\n{}\n--- {} stderr ({})\n{}",
            self.name,
            self.stdout.display(),
            tail(self.stdout()),
            self.name,
            self.stderr.display(),
            tail(self.stderr())
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(80));
        }
        if self.terminate(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

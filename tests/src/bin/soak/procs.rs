//! The suite as operating-system processes, so that the fault schedule can kill them for real
//! (SIGKILL, SIGTERM) and start them again; each one's output appended to its own log file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct Proc {
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    pub log: PathBuf,
    /// The `/readyz` port, for services.
    pub ops_port: Option<u16>,
    child: Option<Child>,
    pub starts: u32,
}

impl Proc {
    pub fn new(name: &str, bin: PathBuf, log_dir: &Path) -> Proc {
        Proc {
            name: name.to_owned(),
            bin,
            args: vec![],
            env: BTreeMap::new(),
            log: log_dir.join(format!("{name}.log")),
            ops_port: None,
            child: None,
            starts: 0,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.insert(k.to_owned(), v.into());
        self
    }

    pub fn ops(mut self, port: u16) -> Self {
        self.ops_port = Some(port);
        self.env("APP__OPS__PORT", port.to_string())
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        writeln!(out, "=== soak: start {} (#{}) ===", self.name, self.starts + 1)?;
        let err = out.try_clone()?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Sends `signal` (`KILL`, `TERM`) and waits for the process to end; after `TERM`, a
    /// process still running after `grace` is killed. Returns how it ended.
    pub async fn signal(&mut self, signal: &str, grace: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".into();
        };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => format!("{status}"),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = child.kill().await;
                format!("still running {grace:?} after SIG{signal}; killed")
            }
        }
    }

    /// Whether it exited by itself (it never should), with its status.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => {
                self.child = None;
                Some(status.to_string())
            }
            _ => None,
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// `GET /readyz` on 127.0.0.1:`port`: true on HTTP 200.
pub async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 32];
        let n = s.read(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).contains(" 200"))
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Waits up to `wait` for `/readyz` of `port`.
pub async fn wait_ready(port: u16, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if ready(port).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Runs `program args…` to its end (bounded by `wait`); Ok(stdout) on success.
pub async fn run(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    wait: Duration,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(wait, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("{} {}: no end within {wait:?}", program.display(), args.join(" ")))??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        anyhow::bail!(
            "{} {} ended {}: {}{}",
            program.display(),
            args.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

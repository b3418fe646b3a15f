//! What a benchmark or soak ran on, for the figures written to BENCHMARKS.md.

use chrono::{DateTime, Utc};

/// What the numbers were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub os: String,
    pub date: DateTime<Utc>,
    pub commit: String,
    /// `/proc/loadavg` when the run started: the machine is shared with other work.
    pub load: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']))
            })
            .unwrap_or("unknown")
            .to_owned();
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or_else(
                || "unknown".to_owned(),
                |kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0),
            );
        let pretty = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        let os = if kernel.is_empty() {
            pretty
        } else {
            format!("{pretty}, Linux {kernel}")
        };
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let commit = match git(&["rev-parse", "--short", "HEAD"]) {
            Some(c) if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => {
                format!("{c} (with uncommitted changes in the working tree)")
            }
            Some(c) => c,
            None => "unknown".to_owned(),
        };
        let load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            load,
            cpus,
            cpu_model,
            memory,
            os,
            date: Utc::now(),
            commit,
        }
    }
}

impl Machine {
    /// One line: cores, CPU, memory, system, and the load average when it was read.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {}, {}; load average {}",
            self.cpus, self.cpu_model, self.memory, self.os, self.load
        )
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

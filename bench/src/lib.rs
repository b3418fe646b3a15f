//! Helpers shared by the benchmark binaries: the machine a run was made on, a sampling
//! profiler over `pg_stat_activity`, and the Markdown report appended to `BENCHMARKS.md`.
//!
//! Benchmarks run against the real servers of `make servers` and are not part of `make test`.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0)
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `n / d` per second, with thousands separators.
pub fn rate(n: i64, d: Duration) -> String {
    let s = d.as_secs_f64();
    if s <= 0.0 {
        return "n/a".to_owned();
    }
    format!("{}/s", thousands((n as f64 / s).round() as i64))
}

pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Appends `section` to `path`, creating the file with `header` first if it does not exist.
pub fn append_report(path: &Path, header: &str, section: &str) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_else(|_| header.to_owned());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(section);
    std::fs::write(path, text)
}

/// One statement (or one group of repeated statements) seen active in `pg_stat_activity`.
#[derive(Debug, Clone)]
pub struct Observed {
    pub label: String,
    /// When it was first seen starting, from the profiler's origin.
    pub first_start: Duration,
    pub count: usize,
    /// Sum of (last sample it was active in − its `query_start`): a lower bound, to within
    /// one sampling interval.
    pub total: Duration,
    /// Samples per wait event (`CPU` when none).
    pub waits: BTreeMap<String, u32>,
}

impl Observed {
    /// The most frequent wait events, as shares of the samples.
    pub fn wait_summary(&self) -> String {
        let all: u32 = self.waits.values().sum();
        let mut w: Vec<_> = self.waits.iter().collect();
        w.sort_by(|a, b| b.1.cmp(a.1));
        w.iter()
            .take(3)
            .map(|(k, v)| format!("{k} {:.0}%", f64::from(**v) * 100.0 / f64::from(all.max(1))))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Samples what the backends of one application (a service's schema: `platform::db` names its
/// connections after it) are executing, every `interval`, without touching the service.
pub struct ActivitySampler {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<Observed>>>,
}

impl ActivitySampler {
    /// Starts sampling, leaving out the backends `exclude` (the caller's own connections);
    /// times are reported from the server's clock at this call.
    pub async fn start(
        database_url: &str,
        application: &str,
        exclude: Vec<i32>,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let origin: DateTime<Utc> = client.query_one("select clock_timestamp()", &[]).await?.get(0);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let application = application.to_owned();
        let task = tokio::spawn(async move {
            let stmt = client
                .prepare(
                    "select pid, query_start, clock_timestamp(),
                            coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(query, 400)
                     from pg_stat_activity
                     where application_name = $1 and state = 'active'
                       and pid <> pg_backend_pid() and pid <> all($2)",
                )
                .await?;
            // One execution is one (pid, query_start).
            let mut seen: BTreeMap<(i32, DateTime<Utc>), Seen> = BTreeMap::new();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = s.cancelled() => break,
                }
                for row in client.query(&stmt, &[&application, &exclude]).await? {
                    let Some(start) = row.get::<_, Option<DateTime<Utc>>>(1) else {
                        continue;
                    };
                    let now: DateTime<Utc> = row.get(2);
                    let wait: String = row.get(3);
                    let query: String = row.get(4);
                    let e = seen.entry((row.get(0), start)).or_insert_with(|| Seen {
                        label: label(&query),
                        last: now,
                        waits: BTreeMap::new(),
                    });
                    e.last = now;
                    *e.waits.entry(wait).or_default() += 1;
                }
            }
            let mut groups: Vec<Observed> = Vec::new();
            let mut by_start: Vec<_> = seen.into_iter().collect();
            by_start.sort_by_key(|((_, start), _)| *start);
            for ((_, start), Seen { label, last, waits }) in by_start {
                let took = (last - start).to_std().unwrap_or_default();
                let from = (start - origin).to_std().unwrap_or_default();
                match groups.iter_mut().find(|g| g.label == label) {
                    Some(g) => {
                        g.count += 1;
                        g.total += took;
                        for (k, v) in waits {
                            *g.waits.entry(k).or_default() += v;
                        }
                    }
                    None => groups.push(Observed {
                        label,
                        first_start: from,
                        count: 1,
                        total: took,
                        waits,
                    }),
                }
            }
            Ok(groups)
        });
        Ok(ActivitySampler { stop, task })
    }

    pub async fn finish(self) -> anyhow::Result<Vec<Observed>> {
        self.stop.cancel();
        self.task.await?
    }
}

/// One execution seen by the sampler.
struct Seen {
    label: String,
    /// The last sample it was active in.
    last: DateTime<Utc>,
    waits: BTreeMap<String, u32>,
}

/// The first words of a statement, whitespace collapsed, for a table row.
fn label(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = flat.chars().take(72).collect();
    if flat.chars().count() > 72 {
        out.push('…');
    }
    out.replace('|', "\\|")
}

/// A Markdown table of what the profiler saw, statements shorter than `min` left out.
pub fn profile_table(observed: &[Observed], min: Duration) -> String {
    let mut out = String::from(
        "| from start | statement (as seen in pg_stat_activity) | seen | time | waits (share of samples) |\n\
         |---:|---|---:|---:|---|\n",
    );
    for o in observed.iter().filter(|o| o.total >= min) {
        let _ = writeln!(
            out,
            "| {:.2} s | `{}` | {} | {} | {} |",
            o.first_start.as_secs_f64(),
            o.label,
            o.count,
            secs(o.total),
            o.wait_summary()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }

    #[test]
    fn labels_are_flat_and_short() {
        let l = label(
            "create temp table expected\n   on commit drop as with rule as (select 1 from policy_rules where a | b)",
        );
        assert!(l.starts_with("create temp table expected on commit drop as"));
        assert!(l.chars().count() <= 73);
        assert!(!l.contains('\n'));
    }
}

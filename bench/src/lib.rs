//! Helpers shared by the benchmark binaries: the machine a run was made on, a sampling
//! profiler over `pg_stat_activity`, and the Markdown report appended to `BENCHMARKS.md`.
//!
//! Benchmarks run against the real servers of `make servers` and are not part of `make test`.

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the numbers were measured on (shared with the soak's report: `testkit::machine`).
pub use testkit::machine::Machine;

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

/// The head of `BENCHMARKS.md`, written when the file is new.
pub const HEADER: &str = "# Benchmarks\n\nMeasured runs of the benchmark commands. They need the real servers and take minutes, so they\nare **not part of `make test`**; run them by hand and commit the section they append.\n";

/// How a figure compares with its target, as the sections write it.
pub fn verdict(met: bool) -> &'static str {
    if met { "target met" } else { "**target missed**" }
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

/// The `q`-quantile (0..=1) of `samples`, nearest rank; `None` when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

pub fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Which wire protocol a [`CountingProxy`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// PostgreSQL frontend/backend protocol v3, without TLS (`sslmode=disable`).
    Postgres,
    /// AMQP 0-9-1, without TLS.
    Amqp,
}

/// Time spent waiting for the server on one kind of round trip.
#[derive(Debug, Clone, Default)]
pub struct Timed {
    pub count: u64,
    pub total: Duration,
}

impl Timed {
    fn add(&mut self, d: Duration) {
        self.count += 1;
        self.total += d;
    }

    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / self.count as u32
        }
    }
}

/// What a [`CountingProxy`] saw, over all its connections.
#[derive(Debug, Clone, Default)]
pub struct WireStats {
    pub connections: u64,
    /// Postgres: frontend messages by type byte (`P` parse, `B` bind, `E` execute, `S` sync,
    /// `Q` simple query, …); backend messages by type byte as `<` + byte (`<Z` ready for
    /// query, `<A` notification). AMQP: `>class.method` from the client, `<class.method`
    /// from the server.
    pub messages: BTreeMap<String, u64>,
    /// Postgres: each round trip (Sync or simple Query → ReadyForQuery) by the statement it
    /// carried (`prepare: …` for a Parse/Describe only), with the time waited.
    pub round_trips: BTreeMap<String, Timed>,
    /// AMQP: publish → confirm on channels that also consume (replies, retries, parking).
    pub confirm_consumer: Timed,
    /// AMQP: publish → confirm on channels that only publish (the relay).
    pub confirm_publisher: Timed,
    /// AMQP: basic.deliver → the client's basic.ack of that delivery.
    pub deliver_to_ack: Timed,
}

impl WireStats {
    pub fn message(&self, key: &str) -> u64 {
        self.messages.get(key).copied().unwrap_or(0)
    }
}

/// A TCP proxy in front of a real server that decodes the protocol as it forwards it and
/// counts messages and round trips: what a service really asks of Postgres and RabbitMQ per
/// message, measured rather than guessed, without touching the service.
pub struct CountingProxy {
    stats: std::sync::Arc<std::sync::Mutex<WireStats>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Proxies `url`'s `host:port`; returns the proxy and `url` rewritten to go through it.
    pub async fn in_front_of(url: &str, wire: Wire) -> anyhow::Result<(CountingProxy, String)> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("{url}: no scheme"))?;
        let (userinfo, hostpath) = rest.rsplit_once('@').map_or(("", rest), |(u, h)| (u, h));
        let (authority, path) = hostpath.split_once('/').map_or((hostpath, ""), |(a, p)| (a, p));
        let target = authority.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stats: std::sync::Arc<std::sync::Mutex<WireStats>> = Default::default();
        let s = stats.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = target.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        s.lock().expect("stats").connections += 1;
                        relay_counting(inbound, outbound, wire, s).await;
                    }
                });
            }
        });
        let at = if userinfo.is_empty() {
            String::new()
        } else {
            format!("{userinfo}@")
        };
        let mut proxied = format!("{scheme}://{at}127.0.0.1:{port}/{path}");
        if wire == Wire::Postgres {
            // The proxy reads the protocol in clear.
            let sep = if proxied.contains('?') { '&' } else { '?' };
            proxied.push_str(&format!("{sep}sslmode=disable"));
        }
        Ok((CountingProxy { stats, acceptor }, proxied))
    }

    pub fn stats(&self) -> WireStats {
        self.stats.lock().expect("stats").clone()
    }

    /// Forgets what was counted so far (after warm-up).
    pub fn reset(&self) {
        let mut s = self.stats.lock().expect("stats");
        let connections = s.connections;
        *s = WireStats {
            connections,
            ..Default::default()
        };
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Per-connection decoding state shared by both directions.
#[derive(Default)]
struct ConnState {
    // Postgres
    statements: BTreeMap<String, String>,
    portals_label: Option<String>,
    pending: std::collections::VecDeque<(String, std::time::Instant)>,
    // AMQP: per channel
    confirming: std::collections::BTreeSet<u16>,
    consuming: std::collections::BTreeSet<u16>,
    published: BTreeMap<u16, (u64, std::collections::VecDeque<(u64, std::time::Instant)>)>,
    delivered: BTreeMap<u16, std::collections::VecDeque<(u64, std::time::Instant)>>,
}

async fn relay_counting(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    wire: Wire,
    stats: std::sync::Arc<std::sync::Mutex<WireStats>>,
) {
    let state = std::sync::Arc::new(std::sync::Mutex::new(ConnState::default()));
    let (ci, co) = inbound.into_split();
    let (si, so) = outbound.into_split();
    let up = pump(ci, so, wire, true, state.clone(), stats.clone());
    let down = pump(si, co, wire, false, state, stats);
    let _ = tokio::join!(up, down);
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    wire: Wire,
    client: bool,
    state: std::sync::Arc<std::sync::Mutex<ConnState>>,
    stats: std::sync::Arc<std::sync::Mutex<WireStats>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    // The client's first bytes have no type byte (Postgres startup, AMQP protocol header).
    let mut preamble = client;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let now = std::time::Instant::now();
        let mut st = state.lock().expect("state");
        let mut stats = stats.lock().expect("stats");
        let used = match wire {
            Wire::Postgres => pg_messages(&pending, &mut preamble, client, now, &mut st, &mut stats),
            Wire::Amqp => amqp_frames(&pending, &mut preamble, client, now, &mut st, &mut stats),
        };
        pending.drain(..used);
    }
    let _ = to.shutdown().await;
}

fn cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

/// Decodes complete Postgres messages at the start of `b`; returns the bytes consumed.
fn pg_messages(
    b: &[u8],
    preamble: &mut bool,
    client: bool,
    now: std::time::Instant,
    st: &mut ConnState,
    stats: &mut WireStats,
) -> usize {
    let mut at = 0;
    if *preamble {
        if b.len() < 4 {
            return 0;
        }
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < len {
            return 0;
        }
        *preamble = false;
        at = len;
    }
    while b.len() >= at + 5 {
        let kind = b[at];
        let len = u32::from_be_bytes([b[at + 1], b[at + 2], b[at + 3], b[at + 4]]) as usize;
        if b.len() < at + 1 + len {
            break;
        }
        let body = &b[at + 5..at + 1 + len];
        at += 1 + len;
        let key = if client {
            (kind as char).to_string()
        } else {
            format!("<{}", kind as char)
        };
        *stats.messages.entry(key).or_default() += 1;
        match (client, kind) {
            (true, b'P') => {
                let (name, rest) = cstr(body);
                let (query, _) = cstr(rest);
                let text = label(&String::from_utf8_lossy(query));
                st.statements
                    .insert(String::from_utf8_lossy(name).into_owned(), text.clone());
                st.portals_label = Some(format!("prepare: {text}"));
            }
            (true, b'B') => {
                let (_portal, rest) = cstr(body);
                let (name, _) = cstr(rest);
                let name = String::from_utf8_lossy(name).into_owned();
                st.portals_label = Some(
                    st.statements
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| format!("statement {name}")),
                );
            }
            (true, b'C') => {
                // Close of a dropped prepared statement: sent with its own Sync, not awaited.
                st.portals_label = Some("close: a dropped statement (not awaited)".to_owned());
            }
            (true, b'S') => {
                let l = st.portals_label.take().unwrap_or_else(|| "sync".to_owned());
                st.pending.push_back((l, now));
            }
            (true, b'Q') => {
                let (query, _) = cstr(body);
                let l = label(&String::from_utf8_lossy(query));
                st.pending.push_back((l, now));
            }
            (false, b'Z') => {
                if let Some((l, t)) = st.pending.pop_front() {
                    stats.round_trips.entry(l).or_default().add(now - t);
                }
            }
            _ => {}
        }
    }
    at
}

/// Decodes complete AMQP frames at the start of `b`; returns the bytes consumed.
fn amqp_frames(
    b: &[u8],
    preamble: &mut bool,
    client: bool,
    now: std::time::Instant,
    st: &mut ConnState,
    stats: &mut WireStats,
) -> usize {
    let mut at = 0;
    if *preamble {
        if b.len() < 8 {
            return 0;
        }
        *preamble = false;
        at = 8;
    }
    while b.len() >= at + 7 {
        let kind = b[at];
        let channel = u16::from_be_bytes([b[at + 1], b[at + 2]]);
        let size = u32::from_be_bytes([b[at + 3], b[at + 4], b[at + 5], b[at + 6]]) as usize;
        if b.len() < at + 7 + size + 1 {
            break;
        }
        let p = &b[at + 7..at + 7 + size];
        at += 7 + size + 1;
        if kind != 1 || p.len() < 4 {
            continue;
        }
        let class = u16::from_be_bytes([p[0], p[1]]);
        let method = u16::from_be_bytes([p[2], p[3]]);
        let args = &p[4..];
        let key = format!("{}{}.{}", if client { '>' } else { '<' }, class, method);
        *stats.messages.entry(key).or_default() += 1;
        let tag = |a: &[u8]| {
            a.get(..8)
                .map(|t| u64::from_be_bytes(t.try_into().expect("8 bytes")))
        };
        match (client, class, method) {
            (true, 85, 10) => {
                st.confirming.insert(channel);
            }
            (true, 60, 40) if st.confirming.contains(&channel) => {
                let e = st.published.entry(channel).or_default();
                e.0 += 1;
                let seq = e.0;
                e.1.push_back((seq, now));
            }
            (false, 60, 80) | (false, 60, 120) => {
                // A publisher confirm (ack or nack) from the server.
                if let (Some(t), Some(bits)) = (tag(args), args.get(8)) {
                    let multiple = bits & 1 == 1;
                    let consumer = st.consuming.contains(&channel);
                    if let Some((_, q)) = st.published.get_mut(&channel) {
                        let into = if consumer {
                            &mut stats.confirm_consumer
                        } else {
                            &mut stats.confirm_publisher
                        };
                        q.retain(|&(seq, sent)| {
                            let hit = if multiple { seq <= t } else { seq == t };
                            if hit {
                                into.add(now - sent);
                            }
                            !hit
                        });
                    }
                }
            }
            (false, 60, 60) => {
                st.consuming.insert(channel);
                // basic.deliver: consumer-tag (shortstr), delivery-tag.
                if let Some(&n) = args.first()
                    && let Some(t) = tag(&args[1 + n as usize..])
                {
                    st.delivered.entry(channel).or_default().push_back((t, now));
                }
            }
            (true, 60, 80) => {
                if let (Some(t), Some(bits)) = (tag(args), args.get(8)) {
                    let multiple = bits & 1 == 1;
                    if let Some(q) = st.delivered.get_mut(&channel) {
                        q.retain(|&(d, at)| {
                            let hit = if multiple { d <= t } else { d == t };
                            if hit {
                                stats.deliver_to_ack.add(now - at);
                            }
                            !hit
                        });
                    }
                }
            }
            _ => {}
        }
    }
    at
}

/// One pgbench run (TPC-B-like), the reference a benchmark reports its rate against.
pub struct Pgbench {
    pub tps: f64,
    pub command: String,
    pub summary: String,
}

/// pgbench's own settings: every section that compares with it says which.
pub struct PgbenchArgs {
    pub clients: u32,
    pub seconds: u32,
    pub scale: u32,
}

pub async fn pgbench(args: &PgbenchArgs) -> anyhow::Result<Pgbench> {
    let cfg: tokio_postgres::Config = testkit::database_url().parse()?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = cfg.get_user().unwrap_or("postgres").to_owned();
    let exe = ["pgbench"]
        .into_iter()
        .map(PathBuf::from)
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("bin/pgbench")),
        )
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("pgbench not found (Debian package postgresql-contrib / postgresql)")?;
    let db = format!("bench_core_{}", &Uuid::now_v7().simple().to_string()[22..]);
    let (admin, conn) = tokio_postgres::connect(&testkit::database_url(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute(&format!("create database {db}")).await?;
    let common = ["-h", &host, "-p", &port, "-U", &user];
    let run = || -> anyhow::Result<Pgbench> {
        eprintln!("pgbench: initialising scale {} in {db}…", args.scale);
        let init = std::process::Command::new(&exe)
            .args(common)
            .args(["-i", "-q", "-s", &args.scale.to_string(), &db])
            .output()?;
        ensure!(
            init.status.success(),
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let clients = args.clients.to_string();
        let threads = args.clients.min(2).to_string();
        let secs = args.seconds.to_string();
        let bench_args = ["-c", &clients, "-j", &threads, "-T", &secs];
        eprintln!("pgbench: {}…", bench_args.join(" "));
        let out = std::process::Command::new(&exe)
            .args(common)
            .args(bench_args)
            .arg(&db)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tps = stdout
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| {
                l.trim_start_matches("tps = ")
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .context("no 'tps = ' line in pgbench's output")?;
        let summary = stdout
            .lines()
            .filter(|l| l.starts_with("latency average") || l.starts_with("tps = "))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Pgbench {
            tps,
            command: format!(
                "pgbench -c {clients} -j {threads} -T {secs} (TPC-B-like, scale {})",
                args.scale
            ),
            summary,
        })
    };
    let result = run();
    admin
        .batch_execute(&format!("drop database if exists {db} with (force)"))
        .await?;
    result
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

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&v, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn postgres_round_trips_are_attributed_to_their_statement() {
        let mut st = ConnState::default();
        let mut stats = WireStats::default();
        let t = std::time::Instant::now();
        let msg = |kind: u8, body: &[u8]| {
            let mut m = vec![kind];
            m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
            m.extend_from_slice(body);
            m
        };
        let mut up = Vec::new();
        up.extend(msg(b'P', b"s1\0select 1\0\0\0"));
        up.extend(msg(b'S', b""));
        up.extend(msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
        up.extend(msg(b'E', b"\0\0\0\0\0"));
        up.extend(msg(b'S', b""));
        let mut pre = false;
        assert_eq!(pg_messages(&up, &mut pre, true, t, &mut st, &mut stats), up.len());
        let z = [msg(b'Z', b"I"), msg(b'Z', b"I")].concat();
        pg_messages(&z, &mut pre, false, t, &mut st, &mut stats);
        assert_eq!(stats.round_trips["prepare: select 1"].count, 1);
        assert_eq!(stats.round_trips["select 1"].count, 1);
        assert_eq!(stats.message("S"), 2);
    }
}

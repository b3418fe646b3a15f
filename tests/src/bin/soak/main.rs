//! `make soak` (issue 14 §2): the whole suite as processes against a three-node RabbitMQ
//! cluster and a private PostgreSQL (`scripts/soak-servers.sh`), under steady mixed load on
//! both lines while a fault schedule, random but reproducible from a seed, closes broker
//! connections, stops and kills broker nodes one at a time, restarts Postgres, kills services
//! with SIGKILL and SIGTERM, injects duplicates and malformed messages, and freezes and thaws
//! each line. At the end, with everything drained, it checks that every command got exactly
//! one final reply and had one effect, that money reconciles to the fen, that outboxes are
//! drained, parking lots hold only what was injected and no inbox holds a message twice, and
//! that no log line holds a full ID or phone number; it writes a report.
//!
//! Settings (environment): `SOAK_MINUTES` (30), `SOAK_SEED` (the clock's seconds), `SOAK_WORKERS`
//! (4), `SOAK_FAULT_GAP_SECS` (25, mean gap between faults), `SOAK_DRAIN_SECS` (600),
//! `SOAK_ENV_FILE` (.local/soak/env, written by `scripts/soak-servers.sh start`),
//! `SOAK_BIN_DIR` (target/debug), `SOAK_REPORT_DIR` (.local/soak/runs).

mod checks;
mod faults;
mod load;
mod procs;
mod wire;

use anyhow::Context as _;
use procs::Proc;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const SERVICES: [&str; 5] = [
    "enrollment",
    "collection",
    "benefits",
    "card-issuance",
    "notification",
];
const OPS_PORT_BASE: u16 = 56801;
const SMSC_PORT: u16 = 56775;

/// What `scripts/soak-servers.sh start` wrote.
#[derive(Clone, Debug)]
pub struct Servers {
    /// `host:port` of each node's AMQP listener.
    pub amqp_hosts: Vec<String>,
    pub api_urls: Vec<String>,
    pub database_url: String,
    pub nodes: Vec<String>,
    pub script: PathBuf,
}

impl Servers {
    fn load(file: &Path, root: &Path) -> anyhow::Result<Servers> {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "{} (run `bash scripts/soak-servers.sh start` first)",
                file.display()
            )
        })?;
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.trim().trim_start_matches("export ").split_once('=') {
                vars.insert(k.to_owned(), v.trim_matches(['"', '\'']).to_owned());
            }
        }
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .with_context(|| format!("{}: no {k}", file.display()))
        };
        let list = |s: String, sep: char| {
            s.split(sep)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        Ok(Servers {
            amqp_hosts: list(get("SOAK_AMQP_HOSTS")?, ','),
            api_urls: list(get("SOAK_API_URLS")?, ','),
            database_url: get("SOAK_DATABASE_URL")?,
            nodes: list(get("SOAK_NODES")?, ' '),
            script: root.join("scripts/soak-servers.sh"),
        })
    }

    /// The cluster's node list for `user`, as the services take it (comma-separated URLs).
    pub fn amqp_urls(&self, user: &str, password: &str) -> String {
        self.amqp_hosts
            .iter()
            .map(|h| format!("amqp://{user}:{password}@{h}/%2f"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The management API of the first node that answers, as guest.
    pub async fn api(&self) -> anyhow::Result<messaging::management::Api> {
        let mut last = None;
        for url in &self.api_urls {
            let api = messaging::management::Api::new(url, "guest", "guest", Duration::from_secs(5))?;
            match api.queue_depths("/").await {
                Ok(_) => return Ok(api),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no management API")))
    }

    /// `scripts/soak-servers.sh ARGS`.
    pub async fn script(&self, args: &[&str]) -> anyhow::Result<String> {
        procs::run(
            Path::new("bash"),
            &[&[self.script.to_str().unwrap_or_default()], args].concat(),
            &[],
            Duration::from_secs(240),
        )
        .await
    }
}

pub struct Settings {
    pub minutes: f64,
    pub seed: u64,
    pub workers: usize,
    pub fault_gap: Duration,
    pub drain: Duration,
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub run_dir: PathBuf,
}

fn env_or<T: std::str::FromStr>(k: &str, default: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The running suite: the processes, the accounts they run as.
pub struct Suite {
    pub procs: tokio::sync::Mutex<BTreeMap<String, Proc>>,
    pub servers: Servers,
    pub ctl: PathBuf,
    /// The broker URL list as guest (the soak's own connection, as an agency system's).
    pub guest_urls: String,
}

impl Suite {
    /// Starts `name` again and waits until it is ready (services) — up to 3 minutes.
    pub async fn restart(&self, name: &str) -> anyhow::Result<()> {
        let port = {
            let mut procs = self.procs.lock().await;
            let p = procs
                .get_mut(name)
                .with_context(|| format!("no process {name}"))?;
            if !p.running() {
                p.start()?;
            }
            p.ops_port
        };
        if let Some(port) = port
            && !procs::wait_ready(port, Duration::from_secs(180)).await
        {
            anyhow::bail!("{name} not ready 180 s after its start");
        }
        Ok(())
    }

    /// Starts any process that exited by itself; says which.
    pub async fn revive(&self) -> Vec<String> {
        let mut out = vec![];
        let mut procs = self.procs.lock().await;
        for p in procs.values_mut() {
            if let Some(status) = p.exited() {
                out.push(format!("{} exited by itself ({status}); started again", p.name));
                let _ = p.start();
            }
        }
        out
    }

    /// `insurancectl ARGS` against the cluster, as guest (the operator).
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        procs::run(
            &self.ctl,
            args,
            &[("AMQP_URL", self.guest_urls.as_str())],
            Duration::from_secs(90),
        )
        .await
    }
}

#[tokio::main]
async fn main() {
    match soak().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e:#}");
            std::process::exit(2);
        }
    }
}

async fn soak() -> anyhow::Result<bool> {
    let root = std::env::current_dir()?;
    let seed = env_or(
        "SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    let started_wall = chrono::Utc::now();
    let run_dir = PathBuf::from(env_or(
        "SOAK_REPORT_DIR",
        root.join(".local/soak/runs").display().to_string(),
    ))
    .join(format!("{}-seed{seed}", started_wall.format("%Y%m%dT%H%M%SZ")));
    std::fs::create_dir_all(run_dir.join("logs"))?;
    let s = Settings {
        minutes: env_or("SOAK_MINUTES", 30.0),
        seed,
        workers: env_or("SOAK_WORKERS", 4),
        fault_gap: Duration::from_secs_f64(env_or("SOAK_FAULT_GAP_SECS", 25.0)),
        drain: Duration::from_secs(env_or("SOAK_DRAIN_SECS", 600)),
        bin_dir: PathBuf::from(env_or(
            "SOAK_BIN_DIR",
            root.join("target/debug").display().to_string(),
        )),
        run_dir: run_dir.clone(),
        root: root.clone(),
    };
    let env_file = PathBuf::from(env_or(
        "SOAK_ENV_FILE",
        root.join(".local/soak/env").display().to_string(),
    ));
    let servers = Servers::load(&env_file, &root)?;
    println!(
        "soak: seed {seed}, {} min, {} workers, a fault every ~{:?}; nodes {}; run dir {}",
        s.minutes,
        s.workers,
        s.fault_gap,
        servers.nodes.join(" "),
        run_dir.display()
    );

    // The end checks compare what is stored with what this run sent: the servers must be fresh.
    let used = load::db(&servers)
        .await?
        .query_opt(
            "select 1 from pg_namespace where nspname in ('enrollment', 'collection', 'benefits')",
            &[],
        )
        .await?
        .is_some();
    anyhow::ensure!(
        !used,
        "the soak's database already holds a run: start from fresh servers (`bash scripts/soak-servers.sh wipe && bash scripts/soak-servers.sh start`, as `make soak` does)"
    );
    let suite = Arc::new(start_suite(&s, servers).await?);
    let started = Instant::now();
    let wire = wire::Wire::new(&suite.guest_urls, started);
    let stop_replies = CancellationToken::new();
    let replies = tokio::spawn(wire.clone().read_replies(stop_replies.clone()));

    // The city's standing population, on open lines before any fault.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let city = Arc::new(load::City::new(seed));
    load::set_up(&wire, &suite, &city, &mut rng).await?;
    println!(
        "soak: set-up done in {:.0?}: {} covered employees",
        started.elapsed(),
        city.covered_count()
    );

    // Load and faults for the run's length.
    let load_start = Instant::now();
    let until = load_start + Duration::from_secs_f64(s.minutes * 60.0);
    let stop_load = CancellationToken::new();
    let mut workers = vec![];
    for w in 0..s.workers {
        workers.push(tokio::spawn(load::worker(
            wire.clone(),
            suite.clone(),
            city.clone(),
            seed.wrapping_add(1 + w as u64),
            stop_load.clone(),
        )));
    }
    let schedule = faults::schedule(
        seed,
        Duration::from_secs_f64(s.minutes * 60.0),
        s.fault_gap,
        suite.servers.nodes.len(),
    );
    println!("soak: {} faults scheduled", schedule.len());
    let log = faults::run(&schedule, until, &suite, &wire, &city, seed).await;
    stop_load.cancel();
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(120), w).await;
    }
    let load_secs = load_start.elapsed();
    println!("soak: load stopped after {load_secs:.0?}; draining");

    // Drain and check.
    let report = checks::finish(&s, &suite, &wire, &city, &log, started_wall).await;
    stop_replies.cancel();
    let _ = replies.await;
    wire.close().await;
    stop_suite(&suite).await;
    let ok = report.ok();
    let text = report.markdown(&s, load_secs);
    std::fs::write(run_dir.join("report.md"), &text)?;
    println!("{text}");
    if std::env::var("SOAK_BENCHMARKS").map(|v| v != "0").unwrap_or(true) {
        checks::append_summary(
            &root.join("BENCHMARKS.md"),
            &report.summary(&s, load_secs, &run_dir),
        )?;
    }
    println!("soak: report in {}", run_dir.join("report.md").display());
    Ok(ok)
}

/// Accounts (a Postgres role and a broker user per service, as `make run` makes them), then
/// the SMS centre and the five services as processes.
async fn start_suite(s: &Settings, servers: Servers) -> anyhow::Result<Suite> {
    let ctl = s.bin_dir.join("insurancectl");
    let guest_urls = servers.amqp_urls("guest", "guest");
    let first_guest = format!("amqp://guest:guest@{}/%2f", servers.amqp_hosts[0]);
    let mut passwords: Vec<(String, String)> = vec![];
    for svc in SERVICES.iter().chain(["data-sharing"].iter()) {
        let var = format!("{}_MQ_PASSWORD", svc.to_uppercase().replace('-', "_"));
        passwords.push((var, format!("soak{:016x}", rand::random::<u64>())));
    }
    let mut env: Vec<(&str, &str)> = passwords.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("DATABASE_URL", servers.database_url.as_str()));
    env.push(("AMQP_URL", first_guest.as_str()));
    env.push(("RABBITMQ_API_URL", servers.api_urls[0].as_str()));
    let mut accounts = procs::run(
        &ctl,
        &["accounts", "apply", "--postgres"],
        &env,
        Duration::from_secs(120),
    )
    .await?;
    accounts += &procs::run(
        &ctl,
        &["accounts", "apply", "--broker"],
        &env,
        Duration::from_secs(120),
    )
    .await?;
    let mut role = BTreeMap::new();
    let mut user = BTreeMap::new();
    for line in accounts.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let [svc, kind, name, ..] = w[..] {
            match kind {
                "role" => role.insert(svc.to_owned(), name.to_owned()),
                "user" => user.insert(svc.to_owned(), name.to_owned()),
                _ => None,
            };
        }
    }
    let password = |svc: &str| {
        let var = format!("{}_MQ_PASSWORD", svc.to_uppercase().replace('-', "_"));
        passwords
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let logs = s.run_dir.join("logs");
    let mut procs = BTreeMap::new();
    let smsc_password = format!("{:08x}", rand::random::<u32>());
    let mut smsc = Proc::new("smsc-sim", s.bin_dir.join("smsc-sim"), &logs)
        .arg("--listen")
        .arg(format!("127.0.0.1:{SMSC_PORT}"))
        .arg("--log-file")
        .arg(s.run_dir.join("sms.jsonl").display().to_string())
        .env("SMSC_PASSWORD", smsc_password.clone());
    smsc.start()?;
    procs.insert("smsc-sim".to_owned(), smsc);
    for (i, svc) in SERVICES.iter().enumerate() {
        let r = role
            .get(*svc)
            .with_context(|| format!("no database role for {svc}: {accounts}"))?;
        let u = user
            .get(*svc)
            .with_context(|| format!("no broker user for {svc}: {accounts}"))?;
        let mut p = Proc::new(svc, s.bin_dir.join(svc), &logs)
            .ops(OPS_PORT_BASE + i as u16)
            .env("APP_ENVIRONMENT", "local")
            .env("APP__DATABASE__URL", servers.database_url.clone())
            .env("APP__DATABASE__USER", r.clone())
            .env("APP__BROKER__URL", servers.amqp_urls(u, &password(svc)))
            // As in production: one JSON object per line (the log scan reads these files).
            .env("APP__TELEMETRY__FORMAT", "json");
        if *svc == "notification" {
            p = p
                .env("APP__SMS__ADDRESS", format!("127.0.0.1:{SMSC_PORT}"))
                .env("APP__SMS__PASSWORD", smsc_password.clone());
        }
        p.start()?;
        procs.insert(svc.to_string(), p);
    }
    for (i, svc) in SERVICES.iter().enumerate() {
        if !procs::wait_ready(OPS_PORT_BASE + i as u16, Duration::from_secs(120)).await {
            anyhow::bail!(
                "{svc} not ready within 120 s; see {}",
                logs.join(format!("{svc}.log")).display()
            );
        }
    }
    println!("soak: five services ready, each as its own database role and broker user");
    Ok(Suite {
        procs: tokio::sync::Mutex::new(procs),
        servers,
        ctl,
        guest_urls,
    })
}

async fn stop_suite(suite: &Suite) {
    let mut procs = suite.procs.lock().await;
    for p in procs.values_mut() {
        p.signal("TERM", Duration::from_secs(30)).await;
    }
}

//! The fault schedule: random but reproducible from the seed. Every kind of fault comes once
//! in each round of the schedule, in a shuffled order, with gaps drawn around the mean gap;
//! the parameters of each (which node, which service, how long) are drawn from the seed too.
//! Faults run one after the other while the load goes on.

use crate::load::City;
use crate::wire::Wire;
use crate::{SERVICES, Suite};
use contracts::Line;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Close every broker connection of one service (the management API's "force close").
    CloseConnections { service: &'static str },
    /// Stop one broker node gracefully, start it again after `down`.
    StopNode { node: usize, down: Duration },
    /// Kill one broker node's VM (SIGKILL), start it again after `down`.
    KillNode { node: usize, down: Duration },
    /// Restart Postgres (`fast`: connections closed; `immediate`: as after a crash).
    RestartPostgres { immediate: bool },
    /// SIGKILL a service, start it again after `down`.
    KillService { service: &'static str, down: Duration },
    /// SIGTERM a service (graceful stop), start it again.
    TermService { service: &'static str },
    /// Publish earlier commands again under their own message ids.
    Duplicates { count: usize },
    /// Publish messages that are no command.
    Malformed { count: usize },
    /// Freeze one line intake-only for `length`, then thaw it.
    Freeze { line: Line, length: Duration },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::CloseConnections { service } => write!(f, "close the broker connections of {service}"),
            Fault::StopNode { node, down } => {
                write!(f, "stop broker node {} for {}s", node + 1, down.as_secs())
            }
            Fault::KillNode { node, down } => write!(
                f,
                "kill broker node {} (SIGKILL), down {}s",
                node + 1,
                down.as_secs()
            ),
            Fault::RestartPostgres { immediate } => {
                write!(
                    f,
                    "restart Postgres ({})",
                    if *immediate { "immediate" } else { "fast" }
                )
            }
            Fault::KillService { service, down } => write!(f, "SIGKILL {service}, down {}s", down.as_secs()),
            Fault::TermService { service } => write!(f, "SIGTERM {service}"),
            Fault::Duplicates { count } => write!(f, "{count} duplicates"),
            Fault::Malformed { count } => write!(f, "{count} malformed messages"),
            Fault::Freeze { line, length } => {
                write!(f, "freeze the {line} line intake-only for {}s", length.as_secs())
            }
        }
    }
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::CloseConnections { .. } => "close-connections",
            Fault::StopNode { .. } => "stop-node",
            Fault::KillNode { .. } => "kill-node",
            Fault::RestartPostgres { .. } => "restart-postgres",
            Fault::KillService { .. } => "sigkill-service",
            Fault::TermService { .. } => "sigterm-service",
            Fault::Duplicates { .. } => "duplicates",
            Fault::Malformed { .. } => "malformed",
            Fault::Freeze { .. } => "freeze-thaw",
        }
    }
}

/// When each fault starts (from the start of the load) and what it is.
pub fn schedule(seed: u64, length: Duration, gap: Duration, nodes: usize) -> Vec<(Duration, Fault)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut out = vec![];
    let mut t = gap / 2;
    let secs =
        |rng: &mut rand::rngs::StdRng, lo: u64, hi: u64| Duration::from_secs(rng.random_range(lo..=hi));
    'rounds: loop {
        let mut kinds: Vec<u8> = (0..10).collect();
        kinds.shuffle(&mut rng);
        for k in kinds {
            let service = SERVICES[rng.random_range(0..SERVICES.len())];
            let fault = match k {
                0 => Fault::CloseConnections { service },
                1 => Fault::StopNode {
                    node: rng.random_range(0..nodes),
                    down: secs(&mut rng, 5, 20),
                },
                2 => Fault::KillNode {
                    node: rng.random_range(0..nodes),
                    down: secs(&mut rng, 5, 20),
                },
                3 => Fault::RestartPostgres {
                    immediate: rng.random_bool(0.5),
                },
                4 => Fault::KillService {
                    service,
                    down: secs(&mut rng, 1, 8),
                },
                5 => Fault::TermService { service },
                6 => Fault::Duplicates {
                    count: rng.random_range(5..=30),
                },
                7 => Fault::Malformed {
                    count: rng.random_range(1..=4),
                },
                8 => Fault::Freeze {
                    line: Line::Medical,
                    length: secs(&mut rng, 20, 60),
                },
                _ => Fault::Freeze {
                    line: Line::Social,
                    length: secs(&mut rng, 20, 60),
                },
            };
            if t >= length {
                break 'rounds;
            }
            out.push((t, fault));
            let g = gap.as_secs_f64();
            t += Duration::from_secs_f64(rng.random_range(g * 0.5..g * 1.5));
        }
    }
    out
}

/// What happened to one fault.
#[derive(Clone, Debug)]
pub struct Done {
    pub at: Duration,
    pub fault: Fault,
    pub took: Duration,
    pub outcome: String,
    pub ok: bool,
}

/// What the faults did, for the end's checks.
#[derive(Default, Debug)]
pub struct Log {
    pub done: Vec<Done>,
    /// Freeze windows: line, from the order's acknowledgement to the thaw's (since the start).
    pub freezes: Vec<(Line, Duration, Duration, String)>,
    /// Processes that exited by themselves.
    pub revived: Vec<String>,
}

/// Runs the schedule until `until` (load start + length).
pub async fn run(
    schedule: &[(Duration, Fault)],
    until: Instant,
    suite: &Suite,
    wire: &Wire,
    city: &City,
    seed: u64,
) -> Log {
    let mut log = Log::default();
    let start = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xd0b1e);
    for (k, (at, fault)) in schedule.iter().enumerate() {
        let when = start + *at;
        if when >= until {
            break;
        }
        tokio::time::sleep_until(when.into()).await;
        log.revived.extend(suite.revive().await);
        let t0 = Instant::now();
        let result = inject(fault, k, suite, wire, city, &mut rng, &mut log).await;
        let (ok, outcome) = match result {
            Ok(s) => (true, s),
            Err(e) => (false, format!("{e:#}")),
        };
        println!(
            "soak: [{:>5.0}s] {fault}: {}{outcome}",
            wire.elapsed().as_secs_f64(),
            if ok { "" } else { "FAILED " }
        );
        log.done.push(Done {
            at: wire.elapsed(),
            fault: fault.clone(),
            took: t0.elapsed(),
            outcome,
            ok,
        });
    }
    if Instant::now() < until {
        tokio::time::sleep_until(until.into()).await;
    }
    log.revived.extend(suite.revive().await);
    log
}

async fn inject(
    fault: &Fault,
    k: usize,
    suite: &Suite,
    wire: &Wire,
    city: &City,
    rng: &mut rand::rngs::StdRng,
    log: &mut Log,
) -> anyhow::Result<String> {
    match fault {
        Fault::CloseConnections { service } => {
            let api = suite.servers.api().await?;
            let mut closed = 0;
            for c in api.connections_in("/").await? {
                if c.username.ends_with(service)
                    && api
                        .close_connection(&c.name, "soak: connection closed on purpose")
                        .await?
                {
                    closed += 1;
                }
            }
            Ok(format!("{closed} connections closed"))
        }
        Fault::StopNode { node, down } | Fault::KillNode { node, down } => {
            let verb = if matches!(fault, Fault::StopNode { .. }) {
                "node-stop"
            } else {
                "node-kill"
            };
            let n = (node + 1).to_string();
            suite.servers.script(&[verb, &n]).await?;
            tokio::time::sleep(*down).await;
            let t = Instant::now();
            suite.servers.script(&["node-start", &n]).await?;
            Ok(format!("back in the cluster {:.0?} after its start", t.elapsed()))
        }
        Fault::RestartPostgres { immediate } => {
            suite
                .servers
                .script(&["pg-restart", if *immediate { "immediate" } else { "fast" }])
                .await?;
            Ok("answering again".into())
        }
        Fault::KillService { service, down } => {
            let how = {
                let mut procs = suite.procs.lock().await;
                let p = procs.get_mut(*service).expect("a service");
                p.signal("KILL", Duration::from_secs(10)).await
            };
            tokio::time::sleep(*down).await;
            let t = Instant::now();
            suite.restart(service).await?;
            Ok(format!("{how}; ready {:.1?} after its start", t.elapsed()))
        }
        Fault::TermService { service } => {
            let t = Instant::now();
            let how = {
                let mut procs = suite.procs.lock().await;
                let p = procs.get_mut(*service).expect("a service");
                p.signal("TERM", Duration::from_secs(60)).await
            };
            let stopped = t.elapsed();
            let t = Instant::now();
            suite.restart(service).await?;
            Ok(format!(
                "stopped in {stopped:.1?} ({how}); ready {:.1?} after its start",
                t.elapsed()
            ))
        }
        Fault::Duplicates { count } => {
            let ids: Vec<_> = {
                let book = wire.book.lock().expect("book");
                book.sent
                    .iter()
                    .filter(|s| s.kind == crate::wire::Kind::Normal)
                    .map(|s| s.id)
                    .collect()
            };
            let mut sent = 0;
            for _ in 0..*count {
                if ids.is_empty() {
                    break;
                }
                if wire.resend(ids[rng.random_range(0..ids.len())]).await {
                    sent += 1;
                }
            }
            Ok(format!("{sent} commands sent again under their own ids"))
        }
        Fault::Malformed { count } => {
            const KEYS: [(Line, &str); 5] = [
                (Line::Medical, "medical.enrollment.enroll-person"),
                (Line::Social, "social.collection.record-payment"),
                (Line::Medical, "medical.benefits.settle"),
                (Line::Common, "common.card-issuance.apply-card"),
                (Line::Social, "social.enrollment.get-person"),
            ];
            let bodies: [&[u8]; 4] = [b"{\"id_number\": ", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"null"];
            for _ in 0..*count {
                let (line, key) = KEYS[rng.random_range(0..KEYS.len())];
                wire.send_malformed(line, key, bodies[rng.random_range(0..bodies.len())])
                    .await;
            }
            Ok(format!("{count} sent"))
        }
        Fault::Freeze { line, length } => {
            let id = format!("soak-{}-{line}-{k}", city.seed % 100_000);
            let hotline = if *line == Line::Medical {
                "027-87812393"
            } else {
                "027-12333"
            };
            // Each order's text its own (two orders of the same length would otherwise read alike, and
            // the end's check, one text per phone, could not tell them apart).
            let announcement = format!(
                "演练：{line}业务系统切换（第{k}号），暂停办理（收件）{}秒，恢复后统一处理。咨询电话{hotline}。",
                length.as_secs()
            );
            let ends = (chrono::Utc::now()
                + chrono::Duration::from_std(*length + Duration::from_secs(3600))?)
            .to_rfc3339();
            let line_arg = line.to_string();
            let from = wire.elapsed();
            let ordered = suite
                .ctl(&[
                    "freeze",
                    "order",
                    "--id",
                    &id,
                    "--mode",
                    "intake-only",
                    "--lines",
                    &line_arg,
                    "--reason",
                    "soak: freeze and thaw",
                    "--announcement",
                    &announcement,
                    "--deadlines",
                    "none",
                    "--ends-at",
                    &ends,
                ])
                .await;
            if ordered.is_ok() {
                tokio::time::sleep(*length).await;
            }
            let t = Instant::now();
            let lifted = suite.ctl(&["freeze", "lift", &id]).await;
            log.freezes.push((*line, from, wire.elapsed(), id.clone()));
            ordered?;
            lifted?;
            Ok(format!(
                "order {id} in force {:.0?}; lifted (acknowledged in {:.1?})",
                *length,
                t.elapsed()
            ))
        }
    }
}

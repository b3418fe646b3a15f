//! `bench-core`: the messaging core's figures from issue 6 §4, against the real servers.
//!
//! Sections (all by default, or some with `--sections`):
//! - `isolation`: p50/p99 of a steady stream of social-line `enroll-person` commands, alone and
//!   while the medical line drains a burst published straight onto its command queue;
//! - `pipeline`: events/s from an outbox insert to the consuming service's inbox commit, and
//!   the raw rate of plain lapin (pipelined confirms, manual acks) on the same broker;
//! - `commands`: `enroll-person` commands/s with replies, and pgbench TPC-B-like in the same run;
//! - `breakdown`: where the time of `commands` goes, counted on the wire by proxies in front
//!   of Postgres and RabbitMQ (round trips and statements per command, NOTIFYs, confirms);
//! - `thaw` (issue 7 §5): `--held` medical `enroll-person` taken in at the counter during an
//!   intake-only freeze, drained at the lift (held commands/s), the social line's p99 during
//!   the drain against alone, and pgbench TPC-B-like with 8 clients in the same sitting.
//!
//! Each section runs in its own `testkit::TestEnv` (schema and broker prefix, removed
//! afterwards) with the services in process. Appends a dated section to `BENCHMARKS.md`
//! unless `--no-write`. Not part of `make test`; run it with `make bench-core`.

use anyhow::{Context, bail, ensure};
use bench::{
    CountingProxy, Machine, Pgbench, PgbenchArgs, Wire, WireStats, millis, pgbench, quantile, secs, thousands,
};
use clap::{Parser, ValueEnum};
use contracts::Line;
use futures_util::StreamExt;
use futures_util::future::join_all;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use messaging::Broker;
use messaging::broker::confirmed;
use messaging::client::{Command, CommandClient};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use testkit::TestEnv;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Section {
    Isolation,
    Pipeline,
    Commands,
    Breakdown,
    Thaw,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmark: the messaging core (isolation, event pipeline, command throughput, breakdown)")]
struct Args {
    /// Sections to run, comma separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Section::Isolation, Section::Pipeline, Section::Commands, Section::Breakdown, Section::Thaw])]
    sections: Vec<Section>,
    /// Isolation: social-line commands per second in the steady stream.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Isolation: seconds the stream runs alone, and at least this long with the burst.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Isolation: medical-line commands published at once, without waiting for replies.
    #[arg(long, default_value_t = 100_000)]
    burst: u32,
    /// Pipeline: events inserted into the outbox (and messages of the raw lapin run).
    #[arg(long, default_value_t = 20_000)]
    events: u32,
    /// Pipeline: prefetch of the raw lapin consumer (the services' default is 16).
    #[arg(long, default_value_t = 16)]
    raw_prefetch: u16,
    /// Commands: `enroll-person` commands sent at once, each waiting for its reply.
    #[arg(long, default_value_t = 5_000)]
    commands: u32,
    /// Commands: pgbench clients.
    #[arg(long, default_value_t = 8)]
    pgbench_clients: u32,
    /// Commands: pgbench seconds.
    #[arg(long, default_value_t = 15)]
    pgbench_seconds: u32,
    /// Commands: pgbench scale factor (`-i -s`).
    #[arg(long, default_value_t = 10)]
    pgbench_scale: u32,
    /// Thaw: medical-line commands held during the freeze, drained at the lift.
    #[arg(long, default_value_t = 100_000)]
    held: u32,
    /// Breakdown: commands sent through the counting proxies.
    #[arg(long, default_value_t = 1_000)]
    breakdown_commands: u32,
    /// The services' Postgres pool size (production default 16).
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// The services' prefetch per queue (production default 16).
    #[arg(long, default_value_t = 16)]
    prefetch: u16,
    /// Markdown file the report is appended to (created with a header if missing).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Print the report only; do not write `--out`.
    #[arg(long)]
    no_write: bool,
    /// A label for the report heading (e.g. "shake-out").
    #[arg(long)]
    label: Option<String>,
}

/// Production messaging settings (but for prefetch), on this env's schema and prefix.
fn settings(env: &TestEnv, service: &str, args: &Args) -> messaging::runtime::ServiceSettings {
    let mut s = env.service_settings(service);
    s.database.pool_size = args.pool_size;
    s.messaging = messaging::runtime::MessagingSettings {
        prefetch: args.prefetch,
        ..Default::default()
    };
    s
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

async fn spawn_enrollment(
    env: &TestEnv,
    service: messaging::runtime::ServiceSettings,
) -> anyhow::Result<Running> {
    let app = enrollment::build(enrollment::Settings {
        service,
        region: "420100".into(),
    })
    .await
    .context("enrollment builds")?;
    env.track_queues(app.topology().owned_queues(app.names()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Ok(Running { shutdown, task })
}

async fn spawn_collection(
    env: &TestEnv,
    service: messaging::runtime::ServiceSettings,
) -> anyhow::Result<Running> {
    let app = collection::build(collection::Settings {
        service,
        region: "420100".into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .context("collection builds")?;
    env.track_queues(app.topology().owned_queues(app.names()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Ok(Running { shutdown, task })
}

/// An `enroll-person` for person `n`: a resident, pension on the social line, resident
/// medical on the medical line (no employer to register first).
fn enroll(line: Line, n: u32) -> Command {
    let t = match line {
        Line::Medical => "resident_medical",
        _ => "pension",
    };
    Command::new(
        line,
        "enrollment",
        "enroll-person",
        &json!({
            "id_number": testkit::id_number(n), "name": "王芳", "phone": testkit::phone(n),
            "category": "resident", "insurance_types": [t], "effective_month": "2024-01"
        }),
    )
}

async fn count(pool: &deadpool_postgres::Pool, sql: &str, queue: Option<&str>) -> anyhow::Result<i64> {
    let db = pool.get().await?;
    let row = match queue {
        Some(q) => db.query_one(sql, &[&q]).await?,
        None => db.query_one(sql, &[]).await?,
    };
    Ok(row.get(0))
}

// ---------------------------------------------------------------------------------------
// 1. Isolation

struct Stream {
    latencies: Vec<Duration>,
    failed: usize,
    took: Duration,
}

/// Sends `rate` social-line commands per second, each on its own task, until `stop` and at
/// least `min` have passed; collects send → reply latencies.
async fn stream(
    client: Arc<CommandClient>,
    rate: u32,
    min: Duration,
    stop: CancellationToken,
    next: Arc<AtomicU32>,
) -> Stream {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < min || !stop.is_cancelled() {
        tick.tick().await;
        let client = client.clone();
        let cmd = enroll(Line::Social, next.fetch_add(1, Ordering::Relaxed));
        tasks.spawn(async move {
            let t = Instant::now();
            match client.send(&cmd, Duration::from_secs(120)).await {
                Ok(r) if r.is_ok() => Some(t.elapsed()),
                _ => None,
            }
        });
    }
    let took = started.elapsed();
    let mut out = Stream {
        latencies: Vec::new(),
        failed: 0,
        took,
    };
    while let Some(r) = tasks.join_next().await {
        match r.ok().flatten() {
            Some(d) => out.latencies.push(d),
            None => out.failed += 1,
        }
    }
    out
}

/// Publishes `n` medical-line `enroll-person` (persons `base`…) straight onto the command
/// exchange, at the counter, with pipelined confirms and no `reply_to`; returns the time to
/// the last confirm.
async fn publish_burst(env: &TestEnv, n: u32, base: u32) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let broker = Broker::new(env.broker_config(), "bench-burst");
    let ch = broker.channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let exchange = env.names().commands_exchange();
    let mut confirms = Vec::with_capacity(n as usize);
    for i in 0..n {
        let cmd = enroll(Line::Medical, base + i);
        let props = messaging::envelope::properties(
            Uuid::now_v7(),
            "enrollment.enroll-person.v1",
            None,
            None,
            "bench-burst",
            BTreeMap::from([("x-channel".to_owned(), "counter".to_owned())]),
        );
        let c = ch
            .basic_publish(
                exchange.as_str().into(),
                cmd.routing_key().as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &cmd.body,
                props,
            )
            .await?;
        confirms.push(c);
    }
    for c in confirms {
        confirmed(Duration::from_secs(60), c).await?;
    }
    broker.close().await;
    Ok(started.elapsed())
}

struct Isolation {
    alone: Stream,
    with_burst: Stream,
    published: Duration,
    drained: Duration,
    burst_done: i64,
}

async fn isolation(args: &Args) -> anyhow::Result<Isolation> {
    let env = TestEnv::new();
    let svc = spawn_enrollment(&env, settings(&env, "enrollment", args)).await?;
    let pool = env.pool("enrollment").await;
    let client = Arc::new(env.client().await);
    let next = Arc::new(AtomicU32::new(10_000_000));
    // Warm-up: connections, prepared statements, queue leaders.
    for _ in 0..20 {
        let c = enroll(Line::Social, next.fetch_add(1, Ordering::Relaxed));
        client.send(&c, Duration::from_secs(30)).await?;
    }
    let run = Duration::from_secs(args.duration);
    eprintln!(
        "isolation: social stream alone, {}/s for {} s…",
        args.rate, args.duration
    );
    let done = CancellationToken::new();
    done.cancel();
    let alone = stream(client.clone(), args.rate, run, done, next.clone()).await;

    eprintln!(
        "isolation: publishing {} medical commands, stream again until drained…",
        thousands(args.burst.into())
    );
    let medical_queue = env.names().command_queue("enrollment", Line::Medical);
    let stop = CancellationToken::new();
    let streaming = tokio::spawn(stream(client.clone(), args.rate, run, stop.clone(), next.clone()));
    let started = Instant::now();
    let published = publish_burst(&env, args.burst, 20_000_000).await?;
    eprintln!("isolation: burst published and confirmed in {}", secs(published));
    let mut burst_done;
    let drained = loop {
        burst_done = count(
            &pool,
            "select count(*) from inbox where queue = $1",
            Some(&medical_queue),
        )
        .await?;
        if burst_done >= i64::from(args.burst) {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "burst not drained after an hour ({burst_done} done)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    stop.cancel();
    let with_burst = streaming.await?;
    eprintln!("isolation: burst drained in {}", secs(drained));
    drop(pool);
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close().await;
    }
    svc.stop().await?;
    Ok(Isolation {
        alone,
        with_burst,
        published,
        drained,
        burst_done,
    })
}

// ---------------------------------------------------------------------------------------
// Thaw (issue 7 §5)

struct Thaw {
    /// Publish → every command held in the backlog with its receipt.
    intake: Duration,
    alone: Stream,
    during: Stream,
    /// Lift → the last held command processed.
    drained: Duration,
    processed: i64,
    ok: i64,
    pgbench: Pgbench,
}

async fn thaw(args: &Args) -> anyhow::Result<Thaw> {
    use contracts::freeze::{ControlMessage, FreezeMode, FreezeOrder, FreezeScope};
    let env = TestEnv::new();
    let svc = spawn_enrollment(&env, settings(&env, "enrollment", args)).await?;
    let pool = env.pool("enrollment").await;
    let client = Arc::new(env.client().await);
    let next = Arc::new(AtomicU32::new(5_000_000));
    for _ in 0..20 {
        let c = enroll(Line::Social, next.fetch_add(1, Ordering::Relaxed));
        client.send(&c, Duration::from_secs(30)).await?;
    }
    let order = ControlMessage::Order {
        order: Box::new(FreezeOrder {
            id: "bench-thaw".into(),
            scope: FreezeScope {
                lines: vec![Line::Medical],
                channels: vec![contracts::Channel::Counter],
                ..Default::default()
            },
            mode: FreezeMode::IntakeOnly,
            starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
            ends_at: None,
            reason: "benchmark".into(),
            announcement: "医保系统切换，柜台收件，咨询电话027-87812393".into(),
            deadlines: Default::default(),
            redirect_to: None,
        }),
    };
    ensure!(
        testkit::services::control(&env, "enrollment", &order)
            .await
            .is_ok(),
        "the freeze order was refused"
    );
    eprintln!(
        "thaw: {} medical commands taken in at the counter…",
        thousands(args.held.into())
    );
    let started = Instant::now();
    publish_burst(&env, args.held, 12_000_000).await?;
    let intake = loop {
        let held = count(&pool, "select count(*) from backlog", None).await?;
        if held >= i64::from(args.held) {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "not all held after an hour ({held})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("thaw: all held in {}; social stream alone…", secs(intake));
    let run = Duration::from_secs(args.duration);
    let done = CancellationToken::new();
    done.cancel();
    let alone = stream(client.clone(), args.rate, run, done, next.clone()).await;
    eprintln!("thaw: lifting; social stream again until drained…");
    let stop = CancellationToken::new();
    let streaming = tokio::spawn(stream(client.clone(), args.rate, run, stop.clone(), next.clone()));
    let lifted = Instant::now();
    let lift = ControlMessage::Lift {
        id: "bench-thaw".into(),
    };
    ensure!(
        testkit::services::control(&env, "enrollment", &lift)
            .await
            .is_ok(),
        "the lift was refused"
    );
    let drained = loop {
        let left = count(
            &pool,
            "select count(*) from backlog where processed_at is null",
            None,
        )
        .await?;
        if left == 0 {
            break lifted.elapsed();
        }
        ensure!(
            lifted.elapsed() < Duration::from_secs(3600),
            "backlog not drained after an hour ({left} left)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    let during = streaming.await?;
    let processed = count(
        &pool,
        "select count(*) from backlog where processed_at is not null",
        None,
    )
    .await?;
    let ok = count(
        &pool,
        "select count(*) from backlog where reply->>'status' = 'ok'",
        None,
    )
    .await?;
    eprintln!("thaw: {processed} processed ({ok} ok) in {}", secs(drained));
    drop(pool);
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close().await;
    }
    svc.stop().await?;
    drop(env);
    let pgbench = pgbench(&PgbenchArgs {
        clients: 8,
        seconds: args.pgbench_seconds,
        scale: args.pgbench_scale,
    })
    .await?;
    eprintln!("pgbench: {}", pgbench.summary);
    Ok(Thaw {
        intake,
        alone,
        during,
        drained,
        processed,
        ok,
        pgbench,
    })
}

// ---------------------------------------------------------------------------------------
// 2. Event pipeline

struct Pipeline {
    events: u32,
    insert: Duration,
    /// Insert → every outbox row marked published (confirmed) by the relay.
    relayed: Option<Duration>,
    end_to_end: Duration,
    consumed: i64,
    body_bytes: usize,
    raw: Duration,
    raw_publish: Duration,
}

/// The body of a `person-enrolled` event for person `n`, as enrollment publishes it.
fn person_enrolled(n: u32) -> serde_json::Value {
    json!({
        "person_id": Uuid::now_v7().to_string(), "id_number": testkit::id_number(n), "name": "王芳",
        "category": "resident", "insurance_types": ["pension"], "effective_month": "2024-01",
        "line": "social"
    })
}

async fn pipeline(args: &Args) -> anyhow::Result<Pipeline> {
    let env = TestEnv::new();
    // Enrollment's relay publishes its outbox; collection consumes enrollment's events.
    let enrollment = spawn_enrollment(&env, settings(&env, "enrollment", args)).await?;
    let collection = spawn_collection(&env, settings(&env, "collection", args)).await?;
    let outbox = env.pool("enrollment").await;
    let inbox = env.pool("collection").await;
    let names = env.names();
    let n = args.events;
    let bodies: Vec<serde_json::Value> = (0..n).map(person_enrolled).collect();
    let body_bytes = serde_json::to_vec(&bodies[0])?.len();
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let headers: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let mut h: BTreeMap<String, String> = BTreeMap::new();
            h.insert("x-channel".into(), "counter".into());
            messaging::trace::inject_or_start(&mut h);
            let _ = id;
            serde_json::to_value(h).expect("headers")
        })
        .collect();
    let notify = messaging::outbox::notify_channel(&env.schema("enrollment"));
    eprintln!(
        "pipeline: inserting {} events into enrollment's outbox…",
        thousands(n.into())
    );
    let started = Instant::now();
    {
        let mut db = outbox.get().await?;
        let tx = db.transaction().await?;
        tx.execute(
            "insert into outbox (message_id, exchange, routing_key, message_type, correlation_id, headers, body)
             select id, $4, 'social.enrollment.person-enrolled', 'enrollment.person-enrolled.v1', id::text, h, b
             from unnest($1::uuid[], $2::jsonb[], $3::jsonb[]) as t(id, h, b)",
            &[&ids, &headers, &bodies, &names.events_exchange()],
        )
        .await?;
        tx.execute("select pg_notify($1, '')", &[&notify]).await?;
        tx.commit().await?;
    }
    let insert = started.elapsed();
    let queue = names.event_queue("collection", Line::Social);
    let mut consumed;
    let mut relayed = None;
    let end_to_end = loop {
        if relayed.is_none()
            && count(
                &outbox,
                "select count(*) from outbox where published_at is null",
                None,
            )
            .await?
                == 0
        {
            relayed = Some(started.elapsed());
        }
        consumed = count(
            &inbox,
            "select count(*) from inbox where queue = $1",
            Some(&queue),
        )
        .await?;
        if consumed >= i64::from(n) {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "only {consumed} of {n} events consumed after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "pipeline: {n} events in collection's inbox after {}",
        secs(end_to_end)
    );
    drop((outbox, inbox));
    enrollment.stop().await?;
    collection.stop().await?;

    // The raw rate: plain lapin, same broker, same body and headers, a quorum queue like the
    // services' event queues, persistent messages, confirms pipelined, manual acks.
    eprintln!("pipeline: raw lapin, {} messages…", thousands(n.into()));
    let raw_queue = format!("{}bench.raw", env.prefix());
    env.track_queues([raw_queue.clone()]);
    let publisher = Broker::new(env.broker_config(), "bench-raw-publisher");
    let consumer_broker = Broker::new(env.broker_config(), "bench-raw-consumer");
    let pch = publisher.channel().await?;
    let mut qargs = FieldTable::default();
    qargs.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    pch.queue_declare(
        raw_queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        qargs,
    )
    .await?;
    pch.confirm_select(ConfirmSelectOptions::default()).await?;
    let cch = consumer_broker.channel().await?;
    cch.basic_qos(args.raw_prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = cch
        .basic_consume(
            raw_queue.as_str().into(),
            "bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consuming = tokio::spawn(async move {
        let mut got = 0u32;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(60), consumer.next()).await {
                Ok(Some(Ok(d))) => {
                    d.acker.ack(BasicAckOptions::default()).await?;
                    got += 1;
                }
                _ => bail!("raw consumer stopped after {got} messages"),
            }
        }
        Ok(Instant::now())
    });
    let raw_started = Instant::now();
    let mut confirms = Vec::with_capacity(n as usize);
    for (i, body) in bodies.iter().enumerate() {
        let h: BTreeMap<String, String> = serde_json::from_value(headers[i].clone())?;
        let props = messaging::envelope::properties(
            ids[i],
            "enrollment.person-enrolled.v1",
            Some(&ids[i].to_string()),
            None,
            "bench-raw",
            h,
        );
        let payload = serde_json::to_vec(body)?;
        let c = pch
            .basic_publish(
                "".into(),
                raw_queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &payload,
                props,
            )
            .await?;
        confirms.push(c);
    }
    for r in join_all(
        confirms
            .into_iter()
            .map(|c| confirmed(Duration::from_secs(60), c)),
    )
    .await
    {
        r?;
    }
    let raw_publish = raw_started.elapsed();
    let last = consuming.await??;
    let raw = last - raw_started;
    eprintln!("pipeline: raw lapin {n} messages in {}", secs(raw));
    let _ = cch.close(200, "done".into()).await;
    let _ = pch.close(200, "done".into()).await;
    consumer_broker.close().await;
    publisher.close().await;
    Ok(Pipeline {
        events: n,
        insert,
        relayed,
        end_to_end,
        consumed,
        body_bytes,
        raw,
        raw_publish,
    })
}

// ---------------------------------------------------------------------------------------
// 3. Command throughput, and 4. its breakdown

struct Burst {
    ok: usize,
    failed: usize,
    took: Duration,
    latencies: Vec<Duration>,
}

/// Sends `n` `enroll-person` commands at once and waits for every reply.
async fn command_burst(client: &CommandClient, n: u32, base: u32) -> Burst {
    let cmds: Vec<Command> = (0..n).map(|i| enroll(Line::Social, base + i)).collect();
    let started = Instant::now();
    let results = join_all(cmds.iter().map(|c| async move {
        let t = Instant::now();
        let r = client.send(c, Duration::from_secs(600)).await;
        (r, t.elapsed())
    }))
    .await;
    let took = started.elapsed();
    let mut b = Burst {
        ok: 0,
        failed: 0,
        took,
        latencies: Vec::new(),
    };
    for (r, d) in results {
        match r {
            Ok(r) if r.is_ok() => {
                b.ok += 1;
                b.latencies.push(d);
            }
            Ok(r) => {
                if b.failed == 0 {
                    eprintln!("first failed reply: {:?}", r.error);
                }
                b.failed += 1;
            }
            Err(e) => {
                if b.failed == 0 {
                    eprintln!("first failed send: {e}");
                }
                b.failed += 1;
            }
        }
    }
    b
}

struct Commands {
    burst: Burst,
    pgbench: Pgbench,
}

async fn commands(args: &Args) -> anyhow::Result<Commands> {
    let env = TestEnv::new();
    let svc = spawn_enrollment(&env, settings(&env, "enrollment", args)).await?;
    let client = env.client().await;
    let warm = command_burst(&client, 50, 15_000_000).await;
    ensure!(warm.failed == 0, "warm-up commands failed");
    eprintln!(
        "commands: {} enroll-person at once…",
        thousands(args.commands.into())
    );
    let burst = command_burst(&client, args.commands, 0).await;
    eprintln!(
        "commands: {} ok, {} failed in {}",
        burst.ok,
        burst.failed,
        secs(burst.took)
    );
    client.close().await;
    svc.stop().await?;
    drop(env);
    let pgbench = pgbench(&PgbenchArgs {
        clients: args.pgbench_clients,
        seconds: args.pgbench_seconds,
        scale: args.pgbench_scale,
    })
    .await?;
    eprintln!("pgbench: {}", pgbench.summary);
    Ok(Commands { burst, pgbench })
}

struct Breakdown {
    burst: Burst,
    pg: WireStats,
    amqp: WireStats,
    events_published: i64,
}

async fn breakdown(args: &Args) -> anyhow::Result<Breakdown> {
    let env = TestEnv::new();
    let mut s = settings(&env, "enrollment", args);
    let (pg_proxy, pg_url) = CountingProxy::in_front_of(&s.database.url, Wire::Postgres).await?;
    let (amqp_proxy, amqp_url) = CountingProxy::in_front_of(&s.broker.url, Wire::Amqp).await?;
    s.database.url = pg_url;
    s.broker.url = amqp_url;
    let svc = spawn_enrollment(&env, s).await?;
    let pool = env.pool("enrollment").await;
    let client = env.client().await;
    let warm = command_burst(&client, 50, 15_000_000).await;
    ensure!(warm.failed == 0, "warm-up commands failed");
    // Let the relay publish the warm-up's events before counting starts.
    while count(
        &pool,
        "select count(*) from outbox where published_at is null",
        None,
    )
    .await?
        > 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = count(&pool, "select count(*) from outbox", None).await?;
    pg_proxy.reset();
    amqp_proxy.reset();
    eprintln!(
        "breakdown: {} enroll-person through counting proxies…",
        thousands(args.breakdown_commands.into())
    );
    let burst = command_burst(&client, args.breakdown_commands, 0).await;
    while count(
        &pool,
        "select count(*) from outbox where published_at is null",
        None,
    )
    .await?
        > 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The relay's last batch commits just after the rows are marked; let it land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pg = pg_proxy.stats();
    let amqp = amqp_proxy.stats();
    let events_published = count(&pool, "select count(*) from outbox", None).await? - before;
    drop(pool);
    client.close().await;
    svc.stop().await?;
    Ok(Breakdown {
        burst,
        pg,
        amqp,
        events_published,
    })
}

// ---------------------------------------------------------------------------------------
// Report

#[derive(Default)]
struct Report {
    isolation: Option<Isolation>,
    pipeline: Option<Pipeline>,
    commands: Option<Commands>,
    breakdown: Option<Breakdown>,
    thaw: Option<Thaw>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.sections.sort();
    args.sections.dedup();
    ensure!(args.rate >= 1 && args.burst >= 1 && args.events >= 1 && args.commands >= 1);
    let machine = Machine::detect();
    let postgres = {
        let (c, conn) = tokio_postgres::connect(&testkit::database_url(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let v: String = c
            .query_one(
                "select format('PostgreSQL %s (shared_buffers %s, synchronous_commit %s, max_connections %s)',
                        current_setting('server_version'), current_setting('shared_buffers'),
                        current_setting('synchronous_commit'), current_setting('max_connections'))",
                &[],
            )
            .await?
            .get(0);
        v
    };
    let mut report = Report::default();
    for s in &args.sections {
        match s {
            Section::Isolation => report.isolation = Some(isolation(&args).await?),
            Section::Pipeline => report.pipeline = Some(pipeline(&args).await?),
            Section::Commands => report.commands = Some(commands(&args).await?),
            Section::Breakdown => report.breakdown = Some(breakdown(&args).await?),
            Section::Thaw => report.thaw = Some(thaw(&args).await?),
        }
    }
    let section = report.markdown(&args, &machine, &postgres);
    println!("{section}");
    if !args.no_write {
        bench::append_report(&args.out, bench::HEADER, &section)
            .with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!("appended to {}", args.out.display());
    }
    Ok(())
}

fn per_s(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-9)
}

fn q(v: &[Duration], p: f64) -> String {
    quantile(v, p).map_or("n/a".into(), millis)
}

impl Report {
    fn markdown(&self, args: &Args, m: &Machine, postgres: &str) -> String {
        let mut s = String::new();
        let label = args
            .label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        let names: Vec<String> = args
            .sections
            .iter()
            .map(|x| format!("{x:?}").to_lowercase())
            .collect();
        let _ = writeln!(
            s,
            "### {} — messaging core: {}{label}\n",
            m.date.format("%Y-%m-%d %H:%M UTC"),
            names.join(", ")
        );
        let _ = writeln!(
            s,
            "- Machine: {} CPUs ({}), {} RAM, {}; Postgres and RabbitMQ on the same machine, \
             shared with other work (load average {} at the start).",
            m.cpus, m.cpu_model, m.memory, m.os, m.load
        );
        let _ = writeln!(s, "- {postgres}.");
        let _ = writeln!(s, "- Commit {}.", m.commit);
        let _ = writeln!(
            s,
            "- Service settings: `database.pool_size` {}, `messaging.prefetch` {}, other messaging \
             settings at their production defaults; services in process; release build.",
            args.pool_size, args.prefetch
        );
        let _ = writeln!(
            s,
            "- Command: `bench-core --sections {} --rate {} --duration {} --burst {} --events {} \
             --raw-prefetch {} --commands {} --pgbench-clients {} --pgbench-seconds {} \
             --pgbench-scale {} --breakdown-commands {} --held {}`.\n",
            names.join(","),
            args.rate,
            args.duration,
            args.burst,
            args.events,
            args.raw_prefetch,
            args.commands,
            args.pgbench_clients,
            args.pgbench_seconds,
            args.pgbench_scale,
            args.breakdown_commands,
            args.held
        );
        if let Some(i) = &self.isolation {
            let p99a = quantile(&i.alone.latencies, 0.99);
            let p99b = quantile(&i.with_burst.latencies, 0.99);
            let ratio = match (p99a, p99b) {
                (Some(a), Some(b)) if !a.is_zero() => Some(b.as_secs_f64() / a.as_secs_f64()),
                _ => None,
            };
            let _ = writeln!(
                s,
                "#### Isolation: social-line `enroll-person` at {}/s, alone and while the medical line drains {} commands\n",
                args.rate,
                thousands(args.burst.into())
            );
            let _ = writeln!(
                s,
                "**p99 with the burst / alone = {}** ({} ≤ 1.5×).\n",
                ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
                bench::verdict(ratio.is_some_and(|r| r <= 1.5))
            );
            s.push_str("| measure | alone | with the burst |\n|---|---:|---:|\n");
            let row = |name: &str, f: &dyn Fn(&Stream) -> String| {
                format!("| {name} | {} | {} |\n", f(&i.alone), f(&i.with_burst))
            };
            s.push_str(&row("Commands answered `ok` / failed", &|x| {
                format!("{} / {}", thousands(x.latencies.len() as i64), x.failed)
            }));
            s.push_str(&row("Stream ran for", &|x| secs(x.took)));
            s.push_str(&row("p50 (send → reply)", &|x| q(&x.latencies, 0.5)));
            s.push_str(&row("p90", &|x| q(&x.latencies, 0.9)));
            s.push_str(&row("**p99**", &|x| q(&x.latencies, 0.99)));
            s.push_str(&row("max", &|x| q(&x.latencies, 1.0)));
            let _ = writeln!(
                s,
                "\nBurst: {} medical-line `enroll-person` published straight onto the command \
                 exchange (pipelined confirms, no `reply_to`) in {}; all {} in enrollment's inbox \
                 after **{}** ({:.0}/s drained). The with-burst stream ran until the burst was \
                 drained (at least {} s).\n",
                thousands(args.burst.into()),
                secs(i.published),
                thousands(i.burst_done),
                secs(i.drained),
                per_s(f64::from(args.burst), i.drained),
                args.duration
            );
        }
        if let Some(t) = &self.thaw {
            let rate = per_s(t.processed as f64, t.drained);
            let p99a = quantile(&t.alone.latencies, 0.99);
            let p99b = quantile(&t.during.latencies, 0.99);
            let ratio = match (p99a, p99b) {
                (Some(a), Some(b)) if !a.is_zero() => Some(b.as_secs_f64() / a.as_secs_f64()),
                _ => None,
            };
            let _ = writeln!(
                s,
                "#### Thaw: {} medical `enroll-person` held at the counter (intake-only), drained at the lift\n",
                thousands(args.held.into())
            );
            let _ = writeln!(
                s,
                "**{}/s held commands drained** ({} ≥ 1,000/s); pgbench (8 clients) {:.0} tps in the \
                 same sitting, ratio {:.0} %. **Social-line p99 during the drain / alone = {}** ({} ≤ 1.5×).\n",
                thousands(rate.round() as i64),
                bench::verdict(rate >= 1000.0),
                t.pgbench.tps,
                rate / t.pgbench.tps * 100.0,
                ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
                bench::verdict(ratio.is_some_and(|r| r <= 1.5))
            );
            s.push_str("| measure | value |\n|---|---:|\n");
            let rows = [
                (
                    "Published at the counter → all held with receipts (backlog rows)".to_owned(),
                    secs(t.intake),
                ),
                (
                    "Lift → last held command processed".to_owned(),
                    format!(
                        "{} ({} processed, {} `ok`)",
                        secs(t.drained),
                        thousands(t.processed),
                        thousands(t.ok)
                    ),
                ),
                (
                    "**Held commands/s**".to_owned(),
                    format!("{}/s", thousands(rate.round() as i64)),
                ),
                (
                    format!("Social `enroll-person` at {}/s alone: p50 / p99", args.rate),
                    format!("{} / {}", q(&t.alone.latencies, 0.5), q(&t.alone.latencies, 0.99)),
                ),
                (
                    "The same during the drain: p50 / **p99**".to_owned(),
                    format!(
                        "{} / {}",
                        q(&t.during.latencies, 0.5),
                        q(&t.during.latencies, 0.99)
                    ),
                ),
                (
                    "Social commands failed (alone / during)".to_owned(),
                    format!("{} / {}", t.alone.failed, t.during.failed),
                ),
                ("pgbench".to_owned(), format!("`{}`", t.pgbench.command)),
                ("pgbench output".to_owned(), t.pgbench.summary.clone()),
            ];
            for (k, v) in rows {
                let _ = writeln!(s, "| {k} | {v} |");
            }
            s.push('\n');
        }
        if let Some(p) = &self.pipeline {
            let e2e = per_s(f64::from(p.events), p.end_to_end);
            let raw = per_s(f64::from(p.events), p.raw);
            let _ = writeln!(
                s,
                "#### Event pipeline: {} `person-enrolled` from enrollment's outbox to collection's inbox\n",
                thousands(p.events.into())
            );
            let _ = writeln!(
                s,
                "**{}/s end to end** ({} ≥ 3,000/s); raw lapin on the same broker {}/s; ratio **{:.0} %**.\n",
                thousands(e2e.round() as i64),
                bench::verdict(e2e >= 3000.0),
                thousands(raw.round() as i64),
                e2e / raw * 100.0
            );
            s.push_str("| measure | value |\n|---|---:|\n");
            let rows = [
                ("Body size (JSON)", format!("{} bytes", p.body_bytes)),
                (
                    "Outbox insert (one statement, with NOTIFY, committed)",
                    secs(p.insert),
                ),
                (
                    "Insert → every row published and confirmed by enrollment's relay",
                    p.relayed.map_or("n/a".into(), |d| {
                        format!(
                            "{} ({}/s)",
                            secs(d),
                            thousands(per_s(f64::from(p.events), d).round() as i64)
                        )
                    }),
                ),
                (
                    "Insert → last inbox row committed in collection",
                    format!("{} ({} rows)", secs(p.end_to_end), thousands(p.consumed)),
                ),
                (
                    "**Events/s end to end**",
                    format!("{}/s", thousands(e2e.round() as i64)),
                ),
                (
                    "Raw lapin: publish with pipelined confirms (all confirmed)",
                    secs(p.raw_publish),
                ),
                (
                    "Raw lapin: first publish → last manual ack",
                    format!("{} (prefetch {})", secs(p.raw), args.raw_prefetch),
                ),
                (
                    "**Raw messages/s**",
                    format!("{}/s", thousands(raw.round() as i64)),
                ),
            ];
            for (k, v) in rows {
                let _ = writeln!(s, "| {k} | {v} |");
            }
            s.push_str(
                "\nThe events go out through enrollment's relay (woken by the insert's NOTIFY) to \
                 `insurance.events`, where the archive stream and collection's quorum event queue \
                 receive them; collection's consumer runs the projection (`person-enrolled`) with \
                 the inbox row in one transaction. The raw run publishes the same bodies and \
                 headers, persistent, to one quorum queue through the default exchange.\n\n",
            );
        }
        if let Some(c) = &self.commands {
            let cps = per_s(c.burst.ok as f64, c.burst.took);
            let ratio = cps / c.pgbench.tps;
            let _ = writeln!(
                s,
                "#### Command throughput: {} `enroll-person` with replies, and pgbench\n",
                thousands(args.commands.into())
            );
            let _ = writeln!(
                s,
                "**{:.0} commands/s**, pgbench {:.0} tps: ratio **{:.0} %** ({} ≥ 50 %).\n",
                cps,
                c.pgbench.tps,
                ratio * 100.0,
                bench::verdict(ratio >= 0.5)
            );
            s.push_str("| measure | value |\n|---|---:|\n");
            let rows = [
                (
                    "Commands answered `ok` / failed",
                    format!("{} / {}", thousands(c.burst.ok as i64), c.burst.failed),
                ),
                ("All sent → last reply", secs(c.burst.took)),
                ("**Commands/s**", format!("{cps:.0}/s")),
                (
                    "Reply latency p50 / p99 (all sent at once)",
                    format!("{} / {}", q(&c.burst.latencies, 0.5), q(&c.burst.latencies, 0.99)),
                ),
                ("pgbench", format!("`{}`", c.pgbench.command)),
                ("pgbench output", c.pgbench.summary.clone()),
                ("**pgbench tps**", format!("{:.0}", c.pgbench.tps)),
            ];
            for (k, v) in rows {
                let _ = writeln!(s, "| {k} | {v} |");
            }
            s.push('\n');
        }
        if let Some(b) = &self.breakdown {
            s.push_str(&b.markdown(args));
        }
        s
    }
}

impl Breakdown {
    fn markdown(&self, args: &Args) -> String {
        let mut s = String::new();
        let n = self.burst.ok.max(1) as f64;
        let pg = &self.pg;
        let a = &self.amqp;
        let _ = writeln!(
            s,
            "#### Where the time goes: {} `enroll-person` through counting proxies\n",
            thousands(args.breakdown_commands.into())
        );
        let _ = writeln!(
            s,
            "Counted on the wire by proxies in front of Postgres and RabbitMQ (the service's \
             connections only; the client is direct), after a warm-up; per command = total / {} \
             commands answered `ok` ({} failed), {} events published by the relay. Took {} \
             ({:.0}/s; the proxies add a hop to every round trip).\n",
            self.burst.ok,
            self.burst.failed,
            self.events_published,
            secs(self.burst.took),
            per_s(self.burst.ok as f64, self.burst.took)
        );
        let rts: u64 = pg.round_trips.values().map(|t| t.count).sum();
        let waited: Duration = pg.round_trips.values().map(|t| t.total).sum();
        let closes: u64 = pg
            .round_trips
            .iter()
            .filter(|(k, _)| k.starts_with("close: "))
            .map(|(_, t)| t.count)
            .sum();
        let prepares: u64 = pg
            .round_trips
            .iter()
            .filter(|(k, _)| k.starts_with("prepare: "))
            .map(|(_, t)| t.count)
            .sum();
        let commits = pg
            .round_trips
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("COMMIT"))
            .map(|(_, t)| t.count)
            .sum::<u64>();
        let notifies = pg
            .round_trips
            .iter()
            .filter(|(k, _)| k.contains("pg_notify") && !k.starts_with("prepare: "))
            .map(|(_, t)| t.count)
            .sum::<u64>();
        let per = |x: u64| format!("{:.2}", x as f64 / n);
        s.push_str("| per command | value |\n|---|---:|\n");
        let rows = [
            (
                "Postgres round trips (Sync or simple Query → ReadyForQuery)",
                per(rts),
            ),
            ("… of which the client awaits", per(rts - closes)),
            (
                "… of which a Parse/Describe only (statement prepared again)",
                per(prepares),
            ),
            (
                "… of which a Close of a dropped statement (not awaited, still a server round)",
                per(closes),
            ),
            (
                "… time waited per command, all connections",
                format!("{:.2} ms", waited.as_secs_f64() * 1000.0 / n),
            ),
            (
                "Parse / Bind / Execute messages",
                format!(
                    "{} / {} / {}",
                    per(pg.message("P")),
                    per(pg.message("B")),
                    per(pg.message("E"))
                ),
            ),
            (
                "Simple queries (BEGIN, SAVEPOINT, COMMIT, …)",
                per(pg.message("Q")),
            ),
            ("COMMITs (handler transactions and relay batches)", per(commits)),
            (
                "`pg_notify` executed (one per handler transaction with events)",
                per(notifies),
            ),
            (
                "Notifications delivered to the relay's LISTEN connection",
                per(pg.message("<A")),
            ),
            ("AMQP basic.deliver to the service", per(a.message("<60.60"))),
            (
                "AMQP basic.publish by the service (replies + events)",
                per(a.message(">60.40")),
            ),
            (
                "AMQP publisher confirms received (basic.ack from the broker)",
                per(a.message("<60.80")),
            ),
            (
                "AMQP basic.ack by the service (consumed deliveries)",
                per(a.message(">60.80")),
            ),
            (
                "Reply publish → its confirm, awaited before the ack (mean)",
                format!(
                    "{} ({} confirms)",
                    millis(a.confirm_consumer.mean()),
                    a.confirm_consumer.count
                ),
            ),
            (
                "Relay publish → confirm (mean; pipelined per batch)",
                format!(
                    "{} ({} confirms)",
                    millis(a.confirm_publisher.mean()),
                    a.confirm_publisher.count
                ),
            ),
            (
                "basic.deliver → basic.ack of that delivery (mean)",
                format!(
                    "{} ({} deliveries)",
                    millis(a.deliver_to_ack.mean()),
                    a.deliver_to_ack.count
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s.push_str(
            "\nRound trips by statement (all the service's connections; `prepare:` is a Parse + \
             Describe + Sync for an unnamed statement, which tokio-postgres sends before every \
             `execute`/`query` given SQL text rather than a prepared statement):\n\n\
             | statement | per command | total | mean wait |\n|---|---:|---:|---:|\n",
        );
        let mut by: Vec<_> = pg.round_trips.iter().collect();
        by.sort_by(|x, y| y.1.count.cmp(&x.1.count).then(x.0.cmp(y.0)));
        for (k, t) in by {
            let _ = writeln!(
                s,
                "| `{}` | {:.2} | {} | {} |",
                k,
                t.count as f64 / n,
                thousands(t.count as i64),
                millis(t.mean())
            );
        }
        s.push('\n');
        s
    }
}

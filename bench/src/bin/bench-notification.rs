//! `bench-notification`: a freeze order's bulk announcement (issue 12) to `--persons`
//! recipients through the SMSC simulator over SMPP, with the simulator's window at
//! `--window`. The recipients are written straight into the notification schema's contacts
//! (the projection enrollment's events would build: enrolling 100,000 persons first would
//! measure enrollment); the order goes through the control exchange as `insurancectl freeze`
//! sends it. Reported: messages and submit_sm PDUs per second from the order to the last
//! submit, and the time to the last delivery receipt. Appends a dated section to
//! `BENCHMARKS.md` unless `--no-write`. Not part of `make test`; `make bench-notification`.

use anyhow::{Context, ensure};
use bench::{Machine, PgbenchArgs, pgbench, secs, thousands};
use clap::Parser;
use contracts::Line;
use contracts::freeze::{ControlMessage, FreezeMode, FreezeOrder, FreezeScope};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testkit::TestEnv;
use testkit::services::Services;

#[derive(Debug, Parser)]
#[command(about = "Benchmark: a bulk outage announcement over SMPP through the SMSC simulator")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    persons: u32,
    /// submit_sm in flight at once (the SMSC's window).
    #[arg(long, default_value_t = 50)]
    window: usize,
    /// Recipients queued per transaction of the bulk send.
    #[arg(long, default_value_t = 1_000)]
    batch: i64,
    /// Messages of the raw SMPP reference (the ESME straight to the simulator, no database).
    #[arg(long, default_value_t = 20_000)]
    raw: u32,
    #[arg(long, default_value_t = 8)]
    pgbench_clients: u32,
    #[arg(long, default_value_t = 15)]
    pgbench_seconds: u32,
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    #[arg(long)]
    no_write: bool,
}

/// The reference in the same sitting: the same text submitted through the service's own ESME
/// (`SmppProvider`, the same window) straight to a fresh simulator, with no queue, claim or
/// record: what the SMPP path alone does on this machine. submit_sm/s.
async fn raw_smpp(
    base: &notification::sms::SmsSettings,
    window: usize,
    n: u32,
    text: &str,
) -> anyhow::Result<(f64, u64)> {
    use futures_util::StreamExt;
    use notification::sms::Provider;
    let smsc = smsc_sim::start(smsc_sim::SimConfig {
        receipt_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let provider = notification::sms::smpp::SmppProvider::start(
        notification::sms::SmsSettings {
            address: smsc.addr.to_string(),
            password: "secret".into(),
            window,
            ..base.clone()
        },
        tx,
        stop.clone(),
    );
    provider
        .submit("13900000000", text)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let warm = smsc.counters().submits;
    let started = Instant::now();
    let failed = futures_util::stream::iter(0..n)
        .map(|i| {
            let p = provider.clone();
            async move { p.submit(&format!("139{:08}", i), text).await.is_err() }
        })
        .buffer_unordered(window)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let took = started.elapsed();
    ensure!(failed == 0, "{failed} raw submits failed");
    let pdus = smsc.counters().submits - warm;
    stop.cancel();
    smsc.stop();
    drain.abort();
    Ok((pdus as f64 / took.as_secs_f64(), pdus))
}

async fn count(pool: &deadpool_postgres::Pool, sql: &str) -> anyhow::Result<i64> {
    Ok(pool.get().await?.query_one(sql, &[]).await?.get(0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.persons >= 1 && args.window >= 1);
    let machine = Machine::detect();
    let env = TestEnv::new();
    let smsc = smsc_sim::start(smsc_sim::SimConfig {
        receipt_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await?;
    let mut service = env.service_settings("notification");
    service.messaging = messaging::runtime::MessagingSettings::default();
    // The base configuration, against the simulator, without the submit rate limit.
    let (base_sms, base_notify) = notification::base_settings();
    let base_sms_for_raw = base_sms.clone();
    let sms = notification::sms::SmsSettings {
        address: smsc.addr.to_string(),
        password: "secret".into(),
        window: args.window,
        submits_per_second: 0,
        batch: 500,
        poll_ms: 100,
        ..base_sms
    };
    let notify = notification::NotifySettings {
        announcement_batch: args.batch,
        ..base_notify
    };
    let app = notification::build(notification::Settings {
        service,
        sms: sms.clone(),
        notify: notify.clone(),
    })
    .await?;
    let pool = app.pool();
    let mut services = Services::new();
    let workers = tokio::spawn(notification::workers(
        &app,
        sms,
        notify,
        services.shutdown.clone(),
    ));
    services.start(&env, app);

    eprintln!("notification: {} contacts…", thousands(args.persons.into()));
    pool.get()
        .await?
        .execute(
            "insert into contacts (recipient, person_id, name, phone, lines)
             select 'person:' || lpad(g::text, 18, '0'), 'p' || g, '参保人' || g,
                    '139' || lpad(g::text, 8, '0'), array['medical']
             from generate_series(1, $1::int) g",
            &[&(args.persons as i32)],
        )
        .await?;
    testkit::services::wait_control_consumed(&env, &["notification"]).await;
    let starts = chrono::Utc::now() + chrono::Duration::hours(2);
    let order = FreezeOrder {
        id: "bench-cutover".into(),
        scope: FreezeScope {
            lines: vec![Line::Medical],
            ..Default::default()
        },
        mode: FreezeMode::IntakeOnly,
        starts_at: starts.fixed_offset(),
        ends_at: Some((starts + chrono::Duration::hours(72)).fixed_offset()),
        reason: "医保信息系统切换".into(),
        announcement: "医保信息系统切换上线，暂停办理医保业务".into(),
        deadlines: Default::default(),
        redirect_to: None,
    };
    let started = Instant::now();
    testkit::services::broadcast_control(
        &env,
        &ControlMessage::Order {
            order: Box::new(order),
        },
    )
    .await;
    let n = i64::from(args.persons);
    let deadline = Duration::from_secs(3_600);
    let mut last_submit = None;
    let mut last_receipt = None;
    let mut progress = Instant::now();
    while last_receipt.is_none() {
        ensure!(
            started.elapsed() < deadline,
            "the bulk send did not finish within {deadline:?}"
        );
        let c = smsc.counters();
        if last_submit.is_none() && smsc.received_count() as i64 >= n {
            last_submit = Some((started.elapsed(), c.submits));
        }
        if last_submit.is_some() {
            let delivered = count(
                &pool,
                "select count(*) from notifications where state = 'delivered'",
            )
            .await?;
            if delivered >= n {
                last_receipt = Some(started.elapsed());
            }
        }
        if progress.elapsed() > Duration::from_secs(10) {
            progress = Instant::now();
            eprintln!(
                "  {:.0} s: {} messages at the SMSC, {} submit_sm, {} receipts",
                started.elapsed().as_secs_f64(),
                thousands(smsc.received_count() as i64),
                thousands(c.submits as i64),
                thousands(c.receipts as i64)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (to_submit, pdus) = last_submit.expect("set");
    let to_receipt = last_receipt.expect("set");
    let counters = smsc.counters();
    let failed = count(
        &pool,
        "select count(*) from notifications where state <> 'delivered'",
    )
    .await?;
    let parts: i64 = count(&pool, "select coalesce(max(parts), 0)::bigint from notifications").await?;
    let chars: i64 = count(
        &pool,
        "select coalesce(max(char_length(text)), 0)::bigint from notifications",
    )
    .await?;
    let text: String = {
        let db = pool.get().await?;
        db.query_one("select text from notifications limit 1", &[])
            .await?
            .get(0)
    };
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
    drop(env);

    eprintln!(
        "reference: {} messages through the ESME alone…",
        thousands(args.raw.into())
    );
    let (raw_rate, raw_pdus) = raw_smpp(&base_sms_for_raw, args.window, args.raw, &text).await?;
    let reference = pgbench(&PgbenchArgs {
        clients: args.pgbench_clients,
        seconds: args.pgbench_seconds,
        scale: 10,
    })
    .await?;
    eprintln!("pgbench: {}", reference.summary);
    let msg_rate = n as f64 / to_submit.as_secs_f64();
    let pdu_rate = pdus as f64 / to_submit.as_secs_f64();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {} — notification: bulk announcement over SMPP\n",
        machine.date.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        s,
        "- Machine: {} CPUs ({}), {} RAM, {}; Postgres, RabbitMQ, the service and the SMSC simulator on the same machine (load average {} at the start).",
        machine.cpus, machine.cpu_model, machine.memory, machine.os, machine.load
    );
    let _ = writeln!(
        s,
        "- Commit {}; release build; window {}, no submit rate limit, {} recipients queued per transaction, receipts after 200 ms; contacts written into the schema, the order sent through the control exchange.",
        machine.commit, args.window, args.batch
    );
    let _ = writeln!(
        s,
        "- Command: `bench-notification --persons {} --window {} --batch {}`.\n",
        args.persons, args.window, args.batch
    );
    let _ = writeln!(
        s,
        "**{:.0} submit_sm/s** ({:.0} messages/s, {} parts each: the announcement is {} characters of Chinese in UCS-2) ({} ≥ 1,000 submits/s); the last delivery receipt **{}** after the order. The ESME alone, in the same sitting: {:.0} submit_sm/s.\n",
        pdu_rate,
        msg_rate,
        parts,
        chars,
        bench::verdict(pdu_rate >= 1000.0),
        secs(to_receipt),
        raw_rate
    );
    s.push_str("| measure | value |\n|---|---:|\n");
    for (k, v) in [
        ("Recipients", thousands(n)),
        ("Order → last message at the SMSC", secs(to_submit)),
        ("Order → last receipt recorded delivered", secs(to_receipt)),
        (
            "submit_sm PDUs / throttled / receipts",
            format!(
                "{} / {} / {}",
                thousands(counters.submits as i64),
                counters.throttled,
                thousands(counters.receipts as i64)
            ),
        ),
        ("Messages not delivered", failed.to_string()),
        (
            "Reference: the ESME alone to a fresh simulator (same text and window, no database)",
            format!("{raw_rate:.0} submit_sm/s ({} PDUs)", thousands(raw_pdus as i64)),
        ),
        (
            "Reference: pgbench",
            format!("`{}`: {}", reference.command, reference.summary),
        ),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    println!("{s}");
    if !args.no_write {
        bench::append_report(&args.out, bench::HEADER, &s)
            .with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!("appended to {}", args.out.display());
    }
    Ok(())
}

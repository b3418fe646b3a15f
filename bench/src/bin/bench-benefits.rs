//! `bench-benefits`: real-time settlement through the broker (issue 9 §6), against the real
//! servers. Employees of one employer are enrolled, assessed and paid through the real
//! enrollment and collection path, so that benefits covers them the next month; then
//! `--settlements` outpatient settlements run with `--in-flight` at once, each the NHSA
//! sequence person lookup (1101), registration (2201), fee upload (2204), pre-settlement
//! (2206) and settlement (2207). Reported: settlements per second, p50/p99 of the whole
//! sequence and of the settlement command alone, and pgbench TPC-B-like with
//! `--pgbench-clients` in the same sitting. Appends a dated section to `BENCHMARKS.md`
//! unless `--no-write`. Not part of `make test`; run it with `make bench-benefits`.

use anyhow::{Context, ensure};
use bench::{Machine, PgbenchArgs, millis, pgbench, quantile, secs, thousands};
use clap::Parser;
use contracts::Line;
use futures_util::StreamExt;
use messaging::client::{Command, CommandClient};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testkit::TestEnv;
use testkit::services::Services;

#[derive(Debug, Parser)]
#[command(
    about = "Benchmark: real-time settlement (lookup, fees, pre-settlement, settlement) through the broker"
)]
struct Args {
    /// Settlements to run.
    #[arg(long, default_value_t = 2_000)]
    settlements: u32,
    /// Settlements in flight at once.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Covered employees the settlements are spread over.
    #[arg(long, default_value_t = 100)]
    persons: u32,
    #[arg(long, default_value_t = 16)]
    pgbench_clients: u32,
    #[arg(long, default_value_t = 15)]
    pgbench_seconds: u32,
    #[arg(long, default_value_t = 10)]
    pgbench_scale: u32,
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    #[arg(long)]
    no_write: bool,
}

/// A seeded (placeholder) level-3 institution and catalogue item of the benefits migration.
const HOSPITAL: &str = "H42010000001";
const ITEM: &str = "XA01";

fn settings(env: &TestEnv, service: &str) -> messaging::runtime::ServiceSettings {
    let mut s = env.service_settings(service);
    s.messaging = messaging::runtime::MessagingSettings::default();
    s
}

async fn ok(client: &CommandClient, service: &str, name: &str, body: Value) -> anyhow::Result<Value> {
    let r = client
        .send(
            &Command::new(Line::Medical, service, name, &body),
            Duration::from_secs(120),
        )
        .await?;
    ensure!(r.is_ok(), "{service} {name}: {r:?}");
    Ok(r.result.unwrap_or(Value::Null))
}

async fn count(pool: &deadpool_postgres::Pool, sql: &str) -> anyhow::Result<i64> {
    Ok(pool.get().await?.query_one(sql, &[]).await?.get(0))
}

async fn wait_count(pool: &deadpool_postgres::Pool, sql: &str, n: i64, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while count(pool, sql).await? < n {
        ensure!(
            started.elapsed() < Duration::from_secs(300),
            "{what}: not reached in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// `n` employees covered from 2024-04 (March 2024 assessed and paid); returns (psn_no, ID).
async fn covered(env: &TestEnv, client: &CommandClient, n: u32) -> anyhow::Result<Vec<(String, String)>> {
    let employer = testkit::credit_code(7_000);
    ok(
        client,
        "enrollment",
        "register-employer",
        json!({"credit_code": employer, "name": "基准公司", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await?;
    let mut persons = Vec::new();
    for i in 0..n {
        let id = testkit::id_number(900_000 + i);
        let r = ok(
            client,
            "enrollment",
            "enroll-person",
            json!({"id_number": id, "name": "参保人", "phone": testkit::phone(i), "category": "employee",
                   "employer_credit_code": employer, "insurance_types": ["employee_medical"],
                   "effective_month": "2024-03"}),
        )
        .await?;
        persons.push((r["person_id"].as_str().context("person_id")?.to_owned(), id));
    }
    let cpool = env.pool("collection").await;
    wait_count(
        &cpool,
        "select count(*) from coverage",
        i64::from(n),
        "collection's projection",
    )
    .await?;
    let wages: Vec<Value> = persons
        .iter()
        .map(|(_, id)| json!({"id_number": id, "previous_year_average": "5000.00"}))
        .collect();
    ok(
        client,
        "collection",
        "declare-wages",
        json!({"employer_credit_code": employer, "year": 2024, "wages": wages}),
    )
    .await?;
    ok(client, "collection", "assess-month", json!({"month": "2024-03"})).await?;
    let row = cpool
        .get()
        .await?
        .query_one(
            "select assessment_id::text, due::text from assessments where payer_id = $1 and month = '2024-03-01'",
            &[&employer],
        )
        .await?;
    let (assessment, due): (String, String) = (row.get(0), row.get(1));
    ok(
        client,
        "collection",
        "record-payment",
        json!({"assessment_id": assessment, "amount": due, "paid_at": "2024-03-20T10:00:00+08:00",
               "tax_receipt_no": "T-bench-2024-03"}),
    )
    .await?;
    let bpool = env.pool("benefits").await;
    wait_count(
        &bpool,
        "select count(*) from paid_months where month = '2024-03-01'",
        i64::from(n),
        "benefits' paid months",
    )
    .await?;
    Ok(persons)
}

struct One {
    whole: Duration,
    settle: Duration,
}

/// One outpatient settlement, the NHSA sequence, for person `who`, visit `k`.
async fn settlement(client: &CommandClient, who: &(String, String), k: u32) -> anyhow::Result<One> {
    let (psn, id) = who;
    let started = Instant::now();
    ok(
        client,
        "benefits",
        "person-info",
        json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": id}),
    )
    .await?;
    let visit = ok(
        client,
        "benefits",
        "register-visit",
        json!({"msgid": format!("{HOSPITAL}-R{k}"), "fixmedins_code": HOSPITAL, "psn_no": psn, "insutype": "310",
               "mdtrt_cert_type": "02", "mdtrt_cert_no": id, "ipt_otp_no": format!("MZ{k}"),
               "begntime": "2024-05-10T09:00:00+08:00", "self_pay": false}),
    )
    .await?;
    let mdtrt = visit["mdtrt_id"].as_str().context("mdtrt_id")?.to_owned();
    ok(
        client,
        "benefits",
        "upload-fees",
        json!({"mdtrt_id": mdtrt, "psn_no": psn, "feedetail": [
            {"feedetl_sn": "1", "med_list_codg": ITEM, "cnt": "2", "pric": "60.00",
             "det_item_fee_sumamt": "120.00", "fee_ocur_time": "2024-05-10 09:30:00"}]}),
    )
    .await?;
    let body = |msgid: String| {
        json!({"msgid": msgid, "fixmedins_code": HOSPITAL, "mdtrt_id": mdtrt, "psn_no": psn,
               "mdtrt_cert_type": "02", "mdtrt_cert_no": id, "medfee_sumamt": "120.00",
               "acct_used_flag": "1", "insutype": "310"})
    };
    ok(client, "benefits", "pre-settle", body(format!("{HOSPITAL}-P{k}"))).await?;
    let t = Instant::now();
    let s = ok(client, "benefits", "settle", body(format!("{HOSPITAL}-S{k}"))).await?;
    let settle = t.elapsed();
    ensure!(s["setl_id"].is_string(), "no setl_id: {s}");
    Ok(One {
        whole: started.elapsed(),
        settle,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.persons >= 1 && args.settlements >= 1 && args.in_flight >= 1);
    let machine = Machine::detect();
    let env = TestEnv::new();
    let mut services = Services::new();
    services.start(
        &env,
        enrollment::build(enrollment::Settings {
            service: settings(&env, "enrollment"),
            region: "420100".into(),
        })
        .await?,
    );
    services.start(
        &env,
        collection::build(collection::Settings {
            service: settings(&env, "collection"),
            region: "420100".into(),
            schedule: collection::schedule::ScheduleSettings {
                enabled: false,
                ..Default::default()
            },
        })
        .await?,
    );
    services.start(
        &env,
        benefits::build(benefits::Settings {
            service: settings(&env, "benefits"),
        })
        .await?,
    );
    let client = env.client().await;
    eprintln!(
        "benefits: {} employees enrolled, assessed and paid…",
        args.persons
    );
    let persons = covered(&env, &client, args.persons).await?;
    for k in 0..20 {
        settlement(&client, &persons[k as usize % persons.len()], 1_000_000 + k).await?;
    }
    eprintln!(
        "benefits: {} settlements, {} in flight…",
        thousands(args.settlements.into()),
        args.in_flight
    );
    let started = Instant::now();
    let results: Vec<anyhow::Result<One>> = futures_util::stream::iter(0..args.settlements)
        .map(|k| {
            let (client, who) = (&client, &persons[k as usize % persons.len()]);
            async move { settlement(client, who, k).await }
        })
        .buffer_unordered(args.in_flight)
        .collect()
        .await;
    let took = started.elapsed();
    let mut whole = Vec::new();
    let mut settle = Vec::new();
    let mut failed = 0usize;
    for r in results {
        match r {
            Ok(o) => {
                whole.push(o.whole);
                settle.push(o.settle);
            }
            Err(e) => {
                if failed == 0 {
                    eprintln!("first failure: {e:#}");
                }
                failed += 1;
            }
        }
    }
    client.close().await;
    services.stop().await;
    drop(env);
    let reference = pgbench(&PgbenchArgs {
        clients: args.pgbench_clients,
        seconds: args.pgbench_seconds,
        scale: args.pgbench_scale,
    })
    .await?;
    eprintln!("pgbench: {}", reference.summary);

    let rate = whole.len() as f64 / took.as_secs_f64().max(1e-9);
    let p99 = quantile(&whole, 0.99);
    let q = |v: &[Duration], p: f64| quantile(v, p).map_or("n/a".into(), millis);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {} — benefits: real-time settlement\n",
        machine.date.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        s,
        "- Machine: {} CPUs ({}), {} RAM, {}; Postgres and RabbitMQ on the same machine (load average {} at the start).",
        machine.cpus, machine.cpu_model, machine.memory, machine.os, machine.load
    );
    let _ = writeln!(
        s,
        "- Commit {}; enrollment, collection and benefits in process, production messaging settings, release build.",
        machine.commit
    );
    let _ = writeln!(
        s,
        "- Command: `bench-benefits --settlements {} --in-flight {} --persons {} --pgbench-clients {} --pgbench-seconds {} --pgbench-scale {}`.\n",
        args.settlements,
        args.in_flight,
        args.persons,
        args.pgbench_clients,
        args.pgbench_seconds,
        args.pgbench_scale
    );
    let _ = writeln!(
        s,
        "**{:.0} settlements/s** (each 5 commands: 1101, 2201, 2204, 2206, 2207), pgbench {:.0} tps: ratio **{:.0} %** ({} ≥ 40 %); \
         **p99 of the whole settlement {}** ({} ≤ 50 ms).\n",
        rate,
        reference.tps,
        rate / reference.tps * 100.0,
        bench::verdict(rate / reference.tps >= 0.4),
        p99.map_or("n/a".into(), millis),
        bench::verdict(p99.is_some_and(|d| d <= Duration::from_millis(50)))
    );
    s.push_str("| measure | value |\n|---|---:|\n");
    for (k, v) in [
        (
            "Settlements ok / failed".to_owned(),
            format!("{} / {failed}", thousands(whole.len() as i64)),
        ),
        ("Ran for".to_owned(), secs(took)),
        (
            "Whole settlement (5 commands): p50 / p90 / **p99** / max".to_owned(),
            format!(
                "{} / {} / {} / {}",
                q(&whole, 0.5),
                q(&whole, 0.9),
                q(&whole, 0.99),
                q(&whole, 1.0)
            ),
        ),
        (
            "`settle` (2207) alone: p50 / p99".to_owned(),
            format!("{} / {}", q(&settle, 0.5), q(&settle, 0.99)),
        ),
        ("pgbench".to_owned(), format!("`{}`", reference.command)),
        ("pgbench output".to_owned(), reference.summary.clone()),
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

//! The messaging core under faults (issue: "The messaging core under faults"), through the
//! probe service: handlers that panic, hang or wait on a lock; retries through the tiers;
//! retries exhausted; error classes; inbox conflicts; a poison outbox row; event times;
//! retention; and a crash loop of a real process that ends in the parking lot and replays.

use contracts::{ErrorCode, Line, ReplyStatus};
use messaging::client::{Command, CommandClient};
use messaging::names::Names;
use messaging::runtime::ServiceSettings;
use serde_json::json;
use std::time::Duration;
use testkit::probe::{self, SERVICE};
use testkit::{TestEnv, WAIT, wait_for};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    ops: std::net::SocketAddr,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("probe task").expect("probe ran cleanly");
    }
}

fn settings(env: &TestEnv) -> ServiceSettings {
    let mut s = env.service_settings(SERVICE);
    s.messaging.prefetch = 4;
    s.messaging.handler_timeout_ms = 2_000;
    s.messaging.max_retries = 2;
    s
}

async fn spawn(env: &TestEnv, settings: ServiceSettings) -> Running {
    let app = probe::build(settings, false).await.expect("probe builds");
    env.track_queues(app.topology().owned_queues(app.names()));
    let ops = app.ops_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Running { shutdown, task, ops }
}

fn cmd(line: Line, name: &str, key: &str) -> Command {
    Command::new(line, SERVICE, name, &json!({"key": key}))
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    let db = env.pool(SERVICE).await.get().await.unwrap();
    db.query_one(sql, &[]).await.unwrap().get(0)
}

fn parking(env: &TestEnv, line: Line) -> String {
    Names::parking(&env.names().command_queue(SERVICE, line))
}

/// Sends every command at once and waits for all replies.
async fn send_all(client: &CommandClient, cmds: Vec<Command>, wait: Duration) -> Vec<contracts::Reply> {
    let futs = cmds.iter().map(|c| client.send(c, wait));
    futures_util::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| r.expect("a reply"))
        .collect()
}

#[tokio::test]
async fn panicking_hanging_and_lock_blocked_handlers_are_settled_and_the_queue_flows() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let client = env.client().await;

    // Hold the row the `lock` command wants, from outside, for the whole test.
    let locker = env.pool(SERVICE).await;
    let mut holder = locker.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.execute("select id from lockable where id = 1 for update", &[])
        .await
        .unwrap();

    // More bad messages than the prefetch (4): unsettled, they would stop the queue.
    let mut cmds: Vec<Command> = (0..5)
        .map(|i| cmd(Line::Medical, "panic", &format!("p{i}")))
        .collect();
    cmds.push(cmd(Line::Medical, "hang", "h"));
    cmds.push(cmd(Line::Medical, "lock", "l"));
    cmds.extend((0..20).map(|i| cmd(Line::Medical, "record", &format!("r{i}"))));
    let replies = send_all(&client, cmds, Duration::from_secs(60)).await;

    for r in &replies[..7] {
        assert_eq!(r.status, ReplyStatus::Rejected, "{r:?}");
        assert_eq!(r.error_code(), Some(ErrorCode::Internal), "{r:?}");
    }
    for r in &replies[7..] {
        assert!(r.is_ok(), "the messages after them are processed: {r:?}");
    }
    assert_eq!(
        count(&env, "select count(*) from effects where command = 'record'").await,
        20
    );
    assert_eq!(
        count(&env, "select count(*) from effects where command <> 'record'").await,
        0,
        "nothing of the failed ones took effect"
    );
    let parked = messaging::parking::list(&env.broker(), &parking(&env, Line::Medical), 20)
        .await
        .unwrap();
    assert_eq!(parked.len(), 7, "{parked:?}");
    let reasons: Vec<String> = parked.iter().filter_map(|p| p.reason.clone()).collect();
    assert_eq!(
        reasons.iter().filter(|r| r.contains("handler panicked")).count(),
        5,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("exceeded its time limit"))
            .count(),
        2,
        "the hang and the lock wait: {reasons:?}"
    );
    tx.rollback().await.unwrap();
    // The connection of the timed-out lock wait was cancelled and dropped: the line still
    // has its whole pool, and the lock is free.
    let again = client
        .send(&cmd(Line::Medical, "lock", "l2"), WAIT)
        .await
        .unwrap();
    assert!(again.is_ok(), "{again:?}");
    app.stop().await;
}

#[tokio::test]
async fn retries_go_through_the_tiers_and_exhausted_ones_are_answered_and_parked() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let client = env.client().await;
    // Fails until it has been through a retry tier once: the tier brings it back.
    let flaky = client.send(&cmd(Line::Social, "flaky", "f"), WAIT).await.unwrap();
    assert!(flaky.is_ok(), "{flaky:?}");
    assert_eq!(
        count(&env, "select count(*) from effects where command = 'flaky'").await,
        1
    );

    // Never succeeds: after max_retries trips it is parked and the sender hears of it.
    let doomed = client
        .send(&cmd(Line::Social, "transient", "t"), WAIT)
        .await
        .unwrap();
    assert_eq!(doomed.error_code(), Some(ErrorCode::Internal), "{doomed:?}");
    assert!(
        doomed
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("retries exhausted"),
        "{doomed:?}"
    );
    let parked = messaging::parking::list(&env.broker(), &parking(&env, Line::Social), 5)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].headers.get("x-retry-count").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        parked[0].routing_key.as_deref(),
        Some("social.probe.transient"),
        "the original routing key travels with it"
    );
    // The tiers are queues of their own, with the delay in the name.
    let tier = Names::retry_tier(
        &env.names().command_queue(SERVICE, Line::Social),
        Duration::from_millis(300),
    );
    assert_eq!(messaging::parking::depth(&env.broker(), &tier).await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn errors_are_sorted_unique_is_conflict_missing_row_is_not_retried() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let client = env.client().await;
    let first = client
        .send(&cmd(Line::Medical, "unique", "u"), WAIT)
        .await
        .unwrap();
    assert!(first.is_ok(), "{first:?}");
    let second = client
        .send(&cmd(Line::Medical, "unique", "u"), WAIT)
        .await
        .unwrap();
    assert_eq!(second.error_code(), Some(ErrorCode::Conflict), "{second:?}");

    let missing = client
        .send(&cmd(Line::Medical, "missing", "m"), WAIT)
        .await
        .unwrap();
    assert_eq!(missing.error_code(), Some(ErrorCode::Internal), "{missing:?}");
    let parked = messaging::parking::list(&env.broker(), &parking(&env, Line::Medical), 5)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        !parked[0].headers.contains_key("x-retry-count"),
        "a missing row is parked at once, not retried: {:?}",
        parked[0]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reused_message_id_with_another_body_or_type_is_a_conflict() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let client = env.client().await;
    let id = Uuid::now_v7();
    let original = cmd(Line::Medical, "record", "a").with_message_id(id);
    let r1 = client.send(&original, WAIT).await.unwrap();
    assert!(r1.is_ok());
    assert_eq!(
        client.send(&original, WAIT).await.unwrap(),
        r1,
        "a true repeat gets the stored reply"
    );

    let other_body = Command::new(Line::Medical, SERVICE, "record", &json!({"key": "b"})).with_message_id(id);
    let r2 = client.send(&other_body, WAIT).await.unwrap();
    assert_eq!(r2.error_code(), Some(ErrorCode::Conflict), "{r2:?}");
    let other_type = cmd(Line::Medical, "hold", "a").with_message_id(id);
    let r3 = client.send(&other_type, WAIT).await.unwrap();
    assert_eq!(r3.error_code(), Some(ErrorCode::Conflict), "{r3:?}");
    assert_eq!(count(&env, "select count(*) from effects").await, 1, "one effect");
    // The conflict did not replace the stored reply.
    assert_eq!(client.send(&original, WAIT).await.unwrap(), r1);
    app.stop().await;
}

#[tokio::test]
async fn a_poison_outbox_row_is_quarantined_while_the_rest_flows_and_can_be_retried() {
    let env = TestEnv::new();
    let mut s = settings(&env);
    s.messaging.outbox_max_attempts = 3;
    // The poison row is a command nobody consumes; the probe's own user may send no commands
    // at all (its grants would refuse it before the broker could find it unroutable), so this
    // one runs as the administrator.
    s.broker.url = testkit::amqp_url();
    let app = spawn(&env, s).await;
    let client = env.client().await;
    let mut tap = env.tap("#").await.unchecked(); // the probe is no contract service
    let poison = client
        .send(&cmd(Line::Medical, "poison", "x"), WAIT)
        .await
        .unwrap();
    assert!(poison.is_ok());
    // The good event of the same transaction, and the ones after it, are published.
    for i in 0..5 {
        let r = client
            .send(&cmd(Line::Medical, "record", &format!("k{i}")), WAIT)
            .await
            .unwrap();
        assert!(r.is_ok());
    }
    let events = tap.collect(6, WAIT).await;
    assert_eq!(events.len(), 6, "the rest flows past the poison row");
    let pool = env.pool(SERVICE).await;
    let rows = wait_for("the poison row quarantined", Duration::from_secs(30), || async {
        let db = pool.get().await.ok()?;
        let rows = messaging::outbox::quarantined(&**db, 10).await.ok()?;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].routing_key, "medical.nobody.listens");
    assert_eq!(rows[0].attempts, 3);
    assert!(
        rows[0].last_error.as_deref().unwrap_or("").contains("unroutable"),
        "{rows:?}"
    );
    assert_eq!(
        count(&env, "select count(*) from outbox where published_at is null").await,
        1,
        "only the poison row is left"
    );
    // An operator retries it: it goes back to the relay (and, still unroutable, back to
    // quarantine after its attempts).
    let db = pool.get().await.unwrap();
    let schema = env.schema(SERVICE);
    assert_eq!(
        messaging::outbox::retry_quarantined(&**db, &schema, None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count(&env, "select count(*) from outbox where failed_at is not null").await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn event_times_are_when_it_happened_not_when_it_was_sent() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let mut tap = env.tap("medical.probe.recorded").await.unchecked();
    // As if committed before a three-day outage and only relayed now.
    let db = env.pool(SERVICE).await.get().await.unwrap();
    db.execute(
        "insert into outbox (message_id, exchange, routing_key, message_type, headers, body, created_at)
         values ($1, $2, 'medical.probe.recorded', 'probe.recorded.v1', '{}', '{\"key\": \"old\"}',
                 '2021-12-14 16:00:00+00')",
        &[&Uuid::now_v7(), &env.names().events_exchange()],
    )
    .await
    .unwrap();
    db.execute(
        &format!("select pg_notify('{}_outbox', '')", env.schema(SERVICE)),
        &[],
    )
    .await
    .unwrap();
    let e = tap.expect("medical.probe.recorded").await;
    let time = chrono::DateTime::parse_from_rfc3339(&e.headers["ce-time"]).unwrap();
    assert_eq!(time.to_utc().to_rfc3339(), "2021-12-14T16:00:00+00:00");
    app.stop().await;
}

#[tokio::test]
async fn retention_prunes_old_published_and_inbox_rows_but_nothing_still_needed() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let client = env.client().await;
    for i in 0..3 {
        assert!(
            client
                .send(&cmd(Line::Medical, "record", &format!("k{i}")), WAIT)
                .await
                .unwrap()
                .is_ok()
        );
    }
    let pool = env.pool(SERVICE).await;
    wait_for("events published", WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one("select count(*) from outbox where published_at is null", &[])
            .await
            .ok()?
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    let db = pool.get().await.unwrap();
    // Age two of everything; add an old unpublished row and an old quarantined row.
    db.batch_execute(
        "update outbox set published_at = now() - interval '100 days', created_at = now() - interval '100 days'
           where id in (select id from outbox order by id limit 2);
         update inbox set received_at = now() - interval '100 days'
           where message_id in (select message_id from inbox order by received_at limit 2);",
    )
    .await
    .unwrap();
    for failed in [false, true] {
        db.execute(
            "insert into outbox (message_id, exchange, routing_key, message_type, body, created_at, failed_at)
             values ($1, 'x', 'medical.probe.none', 'probe.none.v1', '{}', now() - interval '200 days',
                     case when $2 then now() - interval '150 days' end)",
            &[&Uuid::now_v7(), &failed],
        )
        .await
        .unwrap();
    }
    let (outbox, inbox) = messaging::outbox::prune(&**db, Duration::from_secs(90 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!((outbox, inbox), (2, 2));
    assert_eq!(
        count(&env, "select count(*) from outbox where published_at is null").await,
        2,
        "kept"
    );
    assert_eq!(count(&env, "select count(*) from outbox").await, 3);
    assert_eq!(count(&env, "select count(*) from inbox").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_on_the_medical_line_does_not_take_the_social_lines_connections() {
    let env = TestEnv::new();
    let mut s = settings(&env);
    s.database.pool_size = 3;
    s.messaging.prefetch = 32;
    let app = spawn(&env, s).await;
    let client = env.client().await;
    // 60 medical commands that each hold a connection for 0.3 s: 6 s of work for 3
    // connections. Published without waiting.
    for i in 0..60 {
        client
            .publish(&cmd(Line::Medical, "hold", &format!("m{i}")))
            .await
            .unwrap();
    }
    wait_for("the medical burst under way", WAIT, || async {
        (count(&env, "select count(*) from effects where command = 'hold'").await >= 3).then_some(())
    })
    .await;
    // Ten social commands, one after another, while the burst runs.
    for i in 0..10 {
        let r = client
            .send(&cmd(Line::Social, "record", &format!("s{i}")), WAIT)
            .await
            .unwrap();
        assert!(r.is_ok());
    }
    let medical_done = count(&env, "select count(*) from effects where command = 'hold'").await;
    assert!(
        medical_done < 60,
        "the social line was answered while the medical burst still ran ({medical_done}/60 done): \
         it did not wait for the medical line's connections"
    );
    wait_for("the medical burst done", Duration::from_secs(60), || async {
        (count(&env, "select count(*) from effects where command = 'hold'").await == 60).then_some(())
    })
    .await;
    app.stop().await;
}

/// Readiness answers at once and says why it is not ready.
async fn readyz(ops: std::net::SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(ops).await.expect("ops port open");
    s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .expect("readyz answers within 2 s")
        .unwrap();
    let code = out.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0);
    (code, out.rsplit("\r\n\r\n").next().unwrap_or("").to_owned())
}

/// The database away for longer than every retry budget, under a stream of commands:
/// consumption stops instead of burning retries, nothing is parked, and once it is back
/// every command is answered with one effect each. `CORE_OUTAGE_SECS` sets the outage
/// (20 s in `make test`, 180 s in `make test-outage`).
#[tokio::test]
async fn a_long_database_outage_parks_nothing_and_answers_everything_afterwards() {
    let outage = Duration::from_secs(
        std::env::var("CORE_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    let env = TestEnv::new();
    let mut s = settings(&env);
    let (db_proxy, db_url) = testkit::CuttableProxy::in_front_of(&s.database.url).await;
    s.database.url = db_url;
    s.messaging.health_interval_ms = 200;
    let app = spawn(&env, s).await;
    let client = std::sync::Arc::new(env.client().await);
    const N: usize = 200;
    let before = testkit::wait_for("ready", WAIT, || async {
        (readyz(app.ops).await.0 == 200).then_some(())
    });
    before.await;
    // The stream: 200 commands, 10 ms apart, each waiting for its reply.
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut waiting = Vec::new();
            for i in 0..N {
                let client = client.clone();
                waiting.push(tokio::spawn(async move {
                    client
                        .send(
                            &cmd(Line::Social, "record", &format!("o{i}")),
                            Duration::from_secs(600),
                        )
                        .await
                }));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            futures_util::future::join_all(waiting).await
        })
    };
    wait_for("some commands done", WAIT, || async {
        (count(&env, "select count(*) from effects").await >= 20).then_some(())
    })
    .await;
    let queue = env.names().command_queue(SERVICE, Line::Social);
    assert_eq!(env.consumer_count(&queue).await, 1, "consuming before the outage");
    db_proxy.take_down();
    let down_at = std::time::Instant::now();
    let (code, why) = wait_for("not ready while the database is away", WAIT, || async {
        let r = readyz(app.ops).await;
        (r.0 == 503).then_some(r)
    })
    .await;
    assert_eq!(code, 503);
    assert!(why.contains("database is not reachable"), "{why}");
    // Consumption has stopped: the stream piles up in the broker, not in the service. (A
    // quorum queue still counts a cancelled consumer while it holds unacked messages, so the
    // consumer count cannot show it.)
    wait_for("the stream waiting in the broker", WAIT, || async {
        (queue_depth(&env, &queue).await >= 50).then_some(())
    })
    .await;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    assert_eq!(
        readyz(app.ops).await.0,
        503,
        "still alive and answering, not ready"
    );
    db_proxy.bring_up();

    let replies = tokio::time::timeout(Duration::from_secs(300), sender)
        .await
        .expect("every command answered")
        .unwrap();
    let mut ok = 0;
    for r in replies {
        let reply = r.unwrap().expect("a reply to every command");
        assert!(reply.is_ok(), "{reply:?}");
        ok += 1;
    }
    assert_eq!(ok, N);
    assert_eq!(
        count(&env, "select count(*) from effects").await,
        N as i64,
        "one effect each"
    );
    assert_eq!(
        messaging::parking::depth(&env.broker(), &parking(&env, Line::Social))
            .await
            .unwrap(),
        0,
        "nothing parked"
    );
    assert_eq!(env.consumer_count(&queue).await, 1, "consuming again by itself");
    assert_eq!(readyz(app.ops).await.0, 200);
    app.stop().await;
}

async fn queue_depth(env: &TestEnv, queue: &str) -> u32 {
    messaging::parking::depth(&env.broker(), queue).await.unwrap()
}

/// A message that kills the service process on every delivery: the queue's delivery limit
/// ends the loop in the parking lot while the other messages flow, and once the code is
/// fixed the operator replays it and it takes effect once.
#[tokio::test]
async fn a_crash_loop_ends_in_the_parking_lot_and_replays_once() {
    let env = TestEnv::new();
    let mut s = settings(&env);
    s.messaging.delivery_limit = 3;
    // The child takes its tiers from tests/configuration (the defaults): declare the same.
    s.messaging.retry_tiers_ms = messaging::topology::DEFAULT_RETRY_TIERS_MS.to_vec();
    // Declare and migrate once, so the commands have a queue to wait in.
    let app = probe::build(s.clone(), false).await.unwrap();
    env.track_queues(app.topology().owned_queues(app.names()));
    drop(app);
    let client = env.client().await;
    client
        .publish(&cmd(Line::Medical, "crash", "boom"))
        .await
        .unwrap();
    for i in 0..10 {
        client
            .publish(&cmd(Line::Medical, "record", &format!("ok{i}")))
            .await
            .unwrap();
    }
    let spawn_binary = |crash: bool| {
        std::process::Command::new(env!("CARGO_BIN_EXE_probe-service"))
            .env("APP__DATABASE__URL", &s.database.url)
            .env(
                "APP__DATABASE__USER",
                s.database.user.as_deref().unwrap_or_default(),
            )
            .env("APP__DATABASE__SCHEMA", &s.database.schema)
            .env("APP__BROKER__URL", &s.broker.url)
            .env("APP__BROKER__PREFIX", &s.broker.prefix)
            .env("APP__OPS__PORT", "0")
            .env("APP__MESSAGING__DELIVERY_LIMIT", "3")
            .env("APP__MESSAGING__PREFETCH", "1")
            .env("APP__MESSAGING__OUTBOX_POLL_MS", "200")
            .env("PROBE_CRASH", if crash { "1" } else { "0" })
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the probe binary starts")
    };
    let lot = parking(&env, Line::Medical);
    let broker = env.broker();
    let mut crashes = 0;
    loop {
        let mut child = spawn_binary(true);
        // Either it crashes, or it has got past the poison message and drains the rest.
        let exited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(st) = child.try_wait().unwrap() {
                    return Some(st);
                }
                if messaging::parking::depth(&broker, &lot).await.unwrap() == 1
                    && count(&env, "select count(*) from effects").await == 10
                {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the probe crashes or drains within 30 s");
        match exited {
            Some(st) => {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(st.signal(), Some(6), "an abort, not an exit: {st:?}");
                crashes += 1;
                eprintln!("crash {crashes}");
                assert!(crashes <= 6, "the delivery limit ends the loop");
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                break;
            }
        }
    }
    assert!(crashes >= 3, "it really crashed on each delivery ({crashes})");
    let parked = messaging::parking::list(&broker, &lot, 5).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].routing_key.as_deref(),
        Some("medical.probe.crash"),
        "the original routing key, from x-death: {:?}",
        parked[0].headers
    );
    // The fix is deployed; the operator replays the parked message.
    let mut child = spawn_binary(false);
    assert_eq!(messaging::parking::replay(&broker, &lot, None).await.unwrap(), 1);
    wait_for("the replayed message took effect", WAIT, || async {
        (count(&env, "select count(*) from effects where command = 'crash'").await == 1).then_some(())
    })
    .await;
    assert_eq!(
        messaging::parking::depth(&broker, &lot).await.unwrap(),
        0,
        "not parked again"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        count(&env, "select count(*) from effects where command = 'crash'").await,
        1,
        "once"
    );
    broker.close().await;
}

/// A reply the broker refuses (here a full requester's queue that rejects publishes; in the
/// soak, a node rejoining the cluster) is tried again until it is taken: the command is not
/// returned to its queue at once, where it would come back, fail the same way and be parked
/// by the delivery limit with its effect committed and no reply ever sent.
#[tokio::test]
async fn a_refused_reply_is_sent_again_until_taken_and_the_command_is_not_parked() {
    use futures_util::StreamExt;
    use lapin::options::{BasicGetOptions, BasicPublishOptions};
    use lapin::types::{AMQPValue, FieldTable};

    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let queue = env.private_queue(args).await;
    let (ch, requester) = (&queue.channel, queue.name.clone());
    // Full: the service's reply is nacked until the test takes the filler out.
    ch.confirm_select(Default::default()).await.unwrap();
    ch.basic_publish(
        "".into(),
        requester.as_str().into(),
        BasicPublishOptions::default(),
        b"filler",
        lapin::BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let names = env.names();
    let c = cmd(Line::Medical, "record", "refused-reply");
    let message_id = Uuid::now_v7();
    let props = messaging::envelope::properties(
        message_id,
        "probe.record.v1",
        Some("refused-reply"),
        Some(&requester),
        "test",
        Default::default(),
    );
    ch.basic_publish(
        names.commands_exchange().as_str().into(),
        c.routing_key().as_str().into(),
        BasicPublishOptions::default(),
        &c.body,
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
    wait_for("the effect committed", WAIT, || async {
        (count(&env, "select count(*) from effects where key = 'refused-reply'").await == 1).then_some(())
    })
    .await;
    // Long enough for an immediate requeue loop to use up the delivery limit (20).
    let parking = parking(&env, Line::Medical);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        assert_eq!(queue_depth(&env, &parking).await, 0, "the command was parked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let filler = ch
        .basic_get(requester.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the filler");
    assert_eq!(&filler.delivery.data[..], b"filler");
    let mut replies = queue.consume(true).await;
    let d = tokio::time::timeout(WAIT, replies.next())
        .await
        .expect("the reply, once there is room")
        .expect("a delivery")
        .expect("a delivery");
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("refused-reply")
    );
    let reply: contracts::Reply = serde_json::from_slice(&d.data).unwrap();
    assert_eq!(reply.status, ReplyStatus::Ok, "{reply:?}");
    assert_eq!(queue_depth(&env, &parking).await, 0, "nothing parked");
    assert_eq!(
        count(&env, "select count(*) from effects where key = 'refused-reply'").await,
        1,
        "one effect"
    );
    queue.close().await;
    app.stop().await;
}

/// A burst leaves its connections in the pool; those idle for longer than the limit are
/// closed, one per pool stays (the shared server's connections are every service's).
#[tokio::test]
async fn idle_connections_are_closed_and_one_per_pool_stays() {
    let env = TestEnv::new();
    let app = spawn(&env, settings(&env)).await;
    let pool = env.pool(SERVICE).await;
    let pools = messaging::pools::LinePools::shared(pool.clone());
    {
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        a.execute("select 1", &[]).await.unwrap();
        b.execute("select 1", &[]).await.unwrap();
    }
    assert_eq!(pool.status().size, 2);
    pools.close_idle(Duration::from_secs(3600));
    assert_eq!(pool.status().size, 2, "recently used: kept");
    wait_for("the idle connection closed", WAIT, || async {
        pools.close_idle(Duration::from_millis(100));
        (pool.status().size == 1).then_some(())
    })
    .await;
    let c = pool.get().await.unwrap();
    c.execute("select 1", &[]).await.unwrap();
    drop(c);
    app.stop().await;
}

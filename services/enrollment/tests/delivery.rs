//! Delivery guarantees: once in effect, concurrency, parking, per-line pause, crash safety.

mod common;

use contracts::{ErrorCode, Line, ReplyStatus};
use messaging::client::Command;
use messaging::names::Names;
use serde_json::json;
use std::time::Duration;
use testkit::{TestEnv, WAIT, id_number, phone, send_command, wait_for};
use uuid::Uuid;

const SVC: &str = "enrollment";

use common::enroll;

async fn count(db: &deadpool_postgres::Object, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_same_message_id_twice_gets_the_same_reply_and_one_effect() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("#").await;
    let cmd = enroll(1, Line::Medical).with_message_id(Uuid::now_v7());
    let first = send_command(&client, &cmd, WAIT).await.unwrap();
    let second = send_command(&client, &cmd, WAIT).await.unwrap();
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(first, second, "a repeat gets the stored reply");
    // A rejection is stored too: repeating it does not suddenly succeed or fail differently.
    let bad = Command::new(
        Line::Medical,
        SVC,
        "get-person",
        &json!({"id_number": id_number(2)}),
    )
    .with_message_id(Uuid::now_v7());
    let r1 = send_command(&client, &bad, WAIT).await.unwrap();
    let r2 = send_command(&client, &bad, WAIT).await.unwrap();
    assert_eq!((r1.error_code(), &r1), (Some(ErrorCode::NotFound), &r2));

    let db = env.pool("enrollment").await.get().await.unwrap();
    assert_eq!(count(&db, "select count(*) from persons").await, 1);
    assert_eq!(count(&db, "select count(*) from history").await, 1);
    assert_eq!(count(&db, "select count(*) from outbox").await, 1);
    let events = tap.collect(2, Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "exactly one person-enrolled: {events:?}");
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_enrollments_of_distinct_people_all_succeed() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.enrollment.person-enrolled").await;
    let replies = futures_util::future::join_all((0..50).map(|n| {
        let client = &client;
        async move {
            send_command(client, &enroll(1000 + n, Line::Medical), WAIT)
                .await
                .unwrap()
        }
    }))
    .await;
    assert!(
        replies.iter().all(|r| r.is_ok()),
        "{:?}",
        replies.iter().find(|r| !r.is_ok())
    );
    let events = tap.collect(50, WAIT).await;
    let ids: std::collections::HashSet<_> = events
        .iter()
        .map(|e| e.body["id_number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 50);
    let db = env.pool("enrollment").await.get().await.unwrap();
    assert_eq!(count(&db, "select count(*) from persons").await, 50);
    assert_eq!(
        count(
            &db,
            "select count(distinct person_id) from enrollments where status = 'active'"
        )
        .await,
        50
    );
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_message_is_parked_with_its_reason_and_the_next_one_still_flows() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut garbage =
        Command::new(Line::Social, SVC, "enroll-person", &json!({})).with_message_id(Uuid::now_v7());
    garbage.body = b"\xff\xfe not json".to_vec();
    // Fire both without waiting in between: the bad one must not block the good one.
    let next = enroll(7, Line::Social);
    let (bad, good) = tokio::join!(
        send_command(&client, &garbage, WAIT),
        send_command(&client, &next, WAIT)
    );
    assert_eq!(bad.unwrap().error_code(), Some(ErrorCode::MalformedMessage));
    assert!(good.unwrap().is_ok());

    let broker = env.broker();
    let parking = Names::parking(&env.names().command_queue(SVC, Line::Social));
    let parked = wait_for("the parked message", WAIT, || async {
        let list = messaging::parking::list(&broker, &parking, 10).await.ok()?;
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(parked.len(), 1);
    let p = &parked[0];
    assert_eq!(
        p.message_id.as_deref(),
        Some(garbage.message_id.unwrap().to_string().as_str())
    );
    assert_eq!(p.code.as_deref(), Some("MALFORMED_MESSAGE"));
    assert!(p.reason.as_deref().unwrap().contains("not JSON"), "{p:?}");
    assert_eq!(p.routing_key.as_deref(), Some("social.enrollment.enroll-person"));
    // Listing does not consume it. The listing's requeue reaches a quorum queue's count a
    // moment later, so wait for it (a listing that consumed it never gets there).
    wait_for("the listed message back in its parking lot", WAIT, || async {
        (messaging::parking::depth(&broker, &parking).await.ok()? == 1).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn pausing_the_medical_line_leaves_the_social_line_flowing() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let medical_queue = env.names().command_queue(SVC, Line::Medical);
    wait_for("the medical consumer", WAIT, || async {
        (env.consumer_count(&medical_queue).await == 1).then_some(())
    })
    .await;
    app.switches.pause(Line::Medical);
    // The pause takes effect when the consumer is cancelled, not when pause() returns.
    wait_for("the medical consumer cancelled", WAIT, || async {
        (env.consumer_count(&medical_queue).await == 0).then_some(())
    })
    .await;
    let broker = env.broker();

    // The medical command is accepted by the broker and waits there.
    let medical = enroll(20, Line::Medical).with_message_id(Uuid::now_v7());
    let waiting = async {
        let r = send_command(&client, &medical, Duration::from_secs(3)).await;
        assert!(r.is_err(), "a paused line must not answer: {r:?}");
    };
    // Meanwhile social commands are answered.
    let flowing = async {
        for n in 0..5 {
            let r = send_command(&client, &enroll(30 + n, Line::Social), WAIT)
                .await
                .unwrap();
            assert!(r.is_ok(), "{r:?}");
        }
    };
    tokio::join!(waiting, flowing);
    assert_eq!(
        messaging::parking::depth(&broker, &medical_queue).await.unwrap(),
        1,
        "medical command waits in its queue"
    );

    app.switches.resume(Line::Medical);
    // The waiting command is processed; asking again with the same id returns its reply.
    let db = env.pool("enrollment").await.get().await.unwrap();
    let medical_id = id_number(20);
    wait_for("the held medical command to be processed", WAIT, || async {
        let n = db
            .query_one(
                "select count(*) from persons where id_number = $1",
                &[&medical_id],
            )
            .await
            .ok()?
            .get::<_, i64>(0);
        (n == 1).then_some(())
    })
    .await;
    let r = send_command(&client, &medical, WAIT).await.unwrap();
    assert_eq!(r.status, ReplyStatus::Ok, "{r:?}");
    app.stop().await;
}

/// Kills the real binary with SIGKILL in the middle of a stream of commands, starts it again,
/// and checks that every command took effect exactly once.
#[tokio::test]
async fn a_service_killed_mid_stream_loses_and_duplicates_nothing() {
    let env = TestEnv::new();
    let mut settings = common::settings(&env);
    // The child takes its tiers from the configuration files (the defaults): declare and
    // track the same, or its retry queues are left behind.
    settings.service.messaging.retry_tiers_ms = messaging::topology::DEFAULT_RETRY_TIERS_MS.to_vec();
    // Declare the topology (and migrate) once, so the commands have a queue to wait in.
    let app = enrollment::build(settings.clone()).await.unwrap();
    env.track_queues(app.topology().owned_queues(app.names()));
    drop(app);
    let mut tap = env.tap("medical.enrollment.person-enrolled").await;
    let client = env.client().await;
    const N: u32 = 300;
    for n in 0..N {
        client.publish(&enroll(5000 + n, Line::Medical)).await.unwrap();
    }
    let spawn_binary = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_enrollment"))
            .env("APP__DATABASE__URL", &settings.service.database.url)
            .env(
                "APP__DATABASE__USER",
                settings.service.database.user.as_deref().unwrap_or_default(),
            )
            .env("APP__DATABASE__SCHEMA", &settings.service.database.schema)
            .env("APP__BROKER__URL", &settings.service.broker.url)
            .env("APP__BROKER__PREFIX", &settings.service.broker.prefix)
            .env("APP__OPS__PORT", "0")
            .env("APP__MESSAGING__OUTBOX_POLL_MS", "200")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the enrollment binary starts")
    };
    let db = env.pool("enrollment").await.get().await.unwrap();
    let mut child = spawn_binary();
    // Kill it once it is part-way through.
    wait_for("some commands processed", WAIT, || async {
        (count(&db, "select count(*) from inbox").await >= 20).then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = count(&db, "select count(*) from inbox").await;
    assert!(
        at_kill < i64::from(N),
        "the kill should land mid-stream (processed {at_kill})"
    );

    let mut child = spawn_binary();
    wait_for("every command processed", Duration::from_secs(60), || async {
        (count(&db, "select count(*) from inbox").await == i64::from(N)).then_some(())
    })
    .await;
    wait_for("outbox drained", WAIT, || async {
        (count(&db, "select count(*) from outbox where published_at is null").await == 0).then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(count(&db, "select count(*) from persons").await, i64::from(N));
    assert_eq!(
        count(&db, "select count(*) from history").await,
        i64::from(N),
        "one version per command"
    );
    assert_eq!(
        count(&db, "select count(*) from outbox").await,
        i64::from(N),
        "one event per command"
    );
    // Every event reached subscribers; a relay killed between publish and commit may send
    // one twice, with the same message_id, which consumers' inboxes absorb.
    let mut distinct = std::collections::HashSet::new();
    let mut deliveries = 0;
    while distinct.len() < N as usize {
        let Some(e) = tap.next(Duration::from_secs(30)).await else {
            break;
        };
        deliveries += 1;
        distinct.insert(e.message_id);
    }
    assert_eq!(
        distinct.len(),
        N as usize,
        "every event reached subscribers ({deliveries} deliveries)"
    );
    let parking = Names::parking(&env.names().command_queue(SVC, Line::Medical));
    assert_eq!(
        messaging::parking::depth(&env.broker(), &parking).await.unwrap(),
        0
    );
}

/// Cuts every connection of the service to RabbitMQ and to Postgres in the middle of a
/// stream; it reconnects by itself and every command takes effect exactly once.
#[tokio::test]
async fn broker_and_database_outages_are_survived_without_loss() {
    let env = TestEnv::new();
    let mut settings = common::settings(&env);
    let (broker_proxy, amqp) = testkit::CuttableProxy::in_front_of(&settings.service.broker.url).await;
    let (db_proxy, db_url) = testkit::CuttableProxy::in_front_of(&settings.service.database.url).await;
    settings.service.broker.url = amqp;
    settings.service.database.url = db_url;
    let app = enrollment::build(settings)
        .await
        .expect("builds through the proxies");
    env.track_queues(app.topology().owned_queues(app.names()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let client = env.client().await;
    const N: u32 = 200;
    for n in 0..N {
        client.publish(&enroll(8000 + n, Line::Social)).await.unwrap();
    }
    let db = env.pool("enrollment").await.get().await.unwrap();
    wait_for("some commands processed", WAIT, || async {
        (count(&db, "select count(*) from inbox").await >= 30).then_some(())
    })
    .await;
    let cut = broker_proxy.cut() + db_proxy.cut();
    assert!(cut >= 2, "the service had live connections to cut ({cut})");
    assert!(
        count(&db, "select count(*) from inbox").await < i64::from(N),
        "cut landed mid-stream"
    );

    wait_for(
        "every command processed after the outage",
        Duration::from_secs(90),
        || async { (count(&db, "select count(*) from inbox").await == i64::from(N)).then_some(()) },
    )
    .await;
    wait_for("outbox drained after the outage", WAIT, || async {
        (count(&db, "select count(*) from outbox where published_at is null").await == 0).then_some(())
    })
    .await;
    assert_eq!(count(&db, "select count(*) from persons").await, i64::from(N));
    assert_eq!(count(&db, "select count(*) from history").await, i64::from(N));
    assert_eq!(count(&db, "select count(*) from outbox").await, i64::from(N));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// Order per aggregate: 200 commands for 10 persons, interleaved and sent without waiting.
/// Each person's history versions follow the order the commands were sent in, although
/// different persons run in parallel.
#[tokio::test]
async fn commands_for_one_person_take_effect_in_the_order_they_were_sent() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    const PERSONS: u32 = 10;
    const ROUNDS: u32 = 20;
    for round in 0..ROUNDS {
        for p in 0..PERSONS {
            let cmd = if round == 0 {
                enroll(9000 + p, Line::Medical)
            } else {
                Command::new(
                    Line::Medical,
                    SVC,
                    "change-contact",
                    &json!({"id_number": id_number(9000 + p), "phone": phone(p * 100 + round)}),
                )
            };
            client.publish(&cmd).await.unwrap();
        }
    }
    let db = env.pool("enrollment").await.get().await.unwrap();
    wait_for("every command processed", Duration::from_secs(60), || async {
        (count(&db, "select count(*) from inbox").await == i64::from(PERSONS * ROUNDS)).then_some(())
    })
    .await;
    for p in 0..PERSONS {
        let rows = db
            .query(
                "select h.snapshot->>'phone' from history h join persons s on s.person_id = h.entity_id
                 where h.entity = 'person' and s.id_number = $1 order by h.version",
                &[&id_number(9000 + p)],
            )
            .await
            .unwrap();
        let phones: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let sent: Vec<String> = (0..ROUNDS)
            .map(|round| {
                if round == 0 {
                    phone(9000 + p)
                } else {
                    phone(p * 100 + round)
                }
            })
            .collect();
        assert_eq!(phones, sent, "person {p}: versions follow the send order");
    }
    let rejected = count(&db, "select count(*) from inbox where reply->>'status' <> 'ok'").await;
    assert_eq!(rejected, 0, "no change arrived before its person was enrolled");
    app.stop().await;
}

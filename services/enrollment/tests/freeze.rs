//! Freezing a line through `insurance.control` (issue 7): the medical line intake-only at
//! the counter while the social line flows; receipts; a duplicate gets the same receipt; a
//! restart during the freeze comes up frozen; at the lift the backlog is processed once, in
//! arrival order, with `deferred-request-processed`.

mod common;

use contracts::freeze::{ControlMessage, FreezeMode, FreezeOrder, FreezeScope};
use contracts::{Line, ReplyStatus};
use std::time::Duration;
use testkit::{TestEnv, WAIT, id_number, send_command, wait_for};
use uuid::Uuid;

use common::enroll;

use testkit::services::broadcast_control as control;

#[tokio::test]
async fn medical_intake_only_holds_with_receipts_and_thaws_in_arrival_order() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let freeze = app_freeze(&env).await;
    let mut tap = env.tap("medical.enrollment.deferred-request-processed").await;

    let order = FreezeOrder {
        id: "test-medical-counter".into(),
        scope: FreezeScope {
            lines: vec![Line::Medical],
            ..Default::default()
        },
        mode: FreezeMode::IntakeOnly,
        starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
        ends_at: None,
        reason: "cutover drill".into(),
        announcement: "医保系统切换，柜台收件，咨询电话12393".into(),
        deadlines: Default::default(),
        redirect_to: None,
    };
    control(
        &env,
        &ControlMessage::Order {
            order: Box::new(order),
        },
    )
    .await;
    order_stored(&freeze).await;

    // Held: a receipt, no effect yet; the same message again gets the same receipt.
    let first = enroll(1, Line::Medical).with_message_id(Uuid::now_v7());
    let r = wait_for("a deferred reply", WAIT, || async {
        let r = send_command(&client, &first, WAIT).await.ok()?;
        (r.status == ReplyStatus::Deferred).then_some(r)
    })
    .await;
    let receipt = r.receipt.clone().expect("a receipt");
    assert!(
        receipt.received_at.is_some() && receipt.resumes_at.is_none(),
        "{receipt:?}"
    );
    let again = send_command(&client, &first, WAIT).await.unwrap();
    assert_eq!(
        again.receipt.as_ref().map(|r| &r.id),
        Some(&receipt.id),
        "same receipt"
    );
    let second = enroll(2, Line::Medical).with_message_id(Uuid::now_v7());
    let r2 = send_command(&client, &second, WAIT).await.unwrap();
    assert_eq!(r2.status, ReplyStatus::Deferred);

    // The social line goes on.
    let social = send_command(&client, &enroll(3, Line::Social), WAIT)
        .await
        .unwrap();
    assert_eq!(social.status, ReplyStatus::Ok, "{social:?}");
    let db = freeze.get().await.unwrap();
    let persons = |n: u32| {
        let db = &db;
        async move {
            db.query_one(
                "select count(*) from persons where id_number = $1",
                &[&id_number(n)],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    assert_eq!(persons(1).await, 0, "held, not processed");
    assert_eq!(persons(3).await, 1);

    // A restart during the freeze comes up frozen.
    app.stop().await;
    let app = common::spawn(&env).await;
    let third = enroll(4, Line::Medical).with_message_id(Uuid::now_v7());
    let r3 = send_command(&client, &third, WAIT).await.unwrap();
    assert_eq!(
        r3.status,
        ReplyStatus::Deferred,
        "still frozen after the restart: {r3:?}"
    );

    // Thaw: processed once each, in arrival order, each outcome published.
    control(
        &env,
        &ControlMessage::Lift {
            id: "test-medical-counter".into(),
        },
    )
    .await;
    let events = tap.collect(3, Duration::from_secs(30)).await;
    assert_eq!(events.len(), 3, "one deferred-request-processed per held request");
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.body["message_id"].as_str().unwrap().to_owned())
        .collect();
    let sent: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|c| c.message_id.unwrap().to_string())
        .collect();
    // Different persons are processed in parallel; the backlog keeps the arrival order.
    let mut got = ids.clone();
    got.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(got, want, "each held request processed once");
    let order: Vec<String> = db
        .query("select message_id::text from backlog order by seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, sent, "arrival order");
    let events: Vec<_> = sent
        .iter()
        .map(|id| {
            events
                .iter()
                .find(|e| e.body["message_id"] == id.as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(events[0].body["receipt"]["id"], receipt.id.as_str());
    assert_eq!(events[0].body["reply"]["status"], "ok");
    for n in [1, 2, 4] {
        assert_eq!(persons(n).await, 1, "person {n} enrolled once");
    }
    // After the thaw the same message gets the final reply, and no second effect.
    let after = send_command(&client, &first, WAIT).await.unwrap();
    assert_eq!(after.status, ReplyStatus::Ok, "{after:?}");
    assert_eq!(persons(1).await, 1);
    let fresh = send_command(&client, &enroll(5, Line::Medical), WAIT)
        .await
        .unwrap();
    assert_eq!(fresh.status, ReplyStatus::Ok, "the line is open again: {fresh:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_suspended_channel_is_refused_and_not_stored() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let order = FreezeOrder {
        id: "hz-phase-1".into(),
        scope: FreezeScope {
            channels: vec![contracts::Channel::Online],
            ..Default::default()
        },
        mode: FreezeMode::Suspended,
        starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
        ends_at: Some((chrono::Utc::now() + chrono::Duration::hours(1)).fixed_offset()),
        reason: "Hangzhou phase 1".into(),
        announcement: "网上办理暂停，请到柜台办理".into(),
        deadlines: Default::default(),
        redirect_to: Some(contracts::Channel::Counter),
    };
    control(
        &env,
        &ControlMessage::Order {
            order: Box::new(order),
        },
    )
    .await;
    order_stored(&env.pool("enrollment").await).await;
    // Stored is not yet in the service's book (the row commits first): a request sent in
    // between is answered `ok`, and that stored reply would then be repeated to every retry of
    // the same message id (seen in make test on a loaded machine). Wait until the service
    // reports the order in force.
    wait_for("the order in force", WAIT, || async {
        let r = testkit::services::control(&env, "enrollment", &ControlMessage::Status {}).await;
        let s: contracts::freeze::FreezeStatus = serde_json::from_value(r.result?).ok()?;
        s.lines
            .iter()
            .any(|l| l.orders_in_force.iter().any(|o| o == "hz-phase-1"))
            .then_some(())
    })
    .await;
    let mut online = enroll(10, Line::Social).with_message_id(Uuid::now_v7());
    online.channel = Some(contracts::Channel::Online);
    let r = wait_for("a suspended reply", WAIT, || async {
        let r = send_command(&client, &online, WAIT).await.ok()?;
        (r.status == ReplyStatus::Suspended).then_some(r)
    })
    .await;
    let result = r.result.expect("a suspension");
    assert_eq!(result["use_channel"], "counter");
    assert_eq!(result["order"], "hz-phase-1");
    // The counter stays open.
    let counter = send_command(&client, &enroll(11, Line::Social), WAIT)
        .await
        .unwrap();
    assert_eq!(counter.status, ReplyStatus::Ok, "{counter:?}");
    // Not stored as the final reply: after the lift the same command is processed.
    control(
        &env,
        &ControlMessage::Lift {
            id: "hz-phase-1".into(),
        },
    )
    .await;
    let r = wait_for("the same command processed after the lift", WAIT, || async {
        let r = send_command(&client, &online, WAIT).await.ok()?;
        (r.status == ReplyStatus::Ok).then_some(r)
    })
    .await;
    assert!(r.is_ok());
    app.stop().await;
}

async fn app_freeze(env: &TestEnv) -> deadpool_postgres::Pool {
    env.pool("enrollment").await
}

/// Waits until the service has stored the one order the test sent.
async fn order_stored(pool: &deadpool_postgres::Pool) {
    wait_for("the order to be stored", WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one("select count(*) from freeze_orders", &[])
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
}

/// Wuhan 2021-12-14 17:30: resident medical registration and change suspended on every
/// channel (an order scoped by payer kind). A change of contact names only the person; the
/// gate finds the person's category itself, so a resident's change is refused and a
/// flexible worker's goes through.
#[tokio::test]
async fn an_order_scoped_by_payer_kind_holds_commands_that_name_only_the_person() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let resident = messaging::client::Command::new(
        Line::Medical,
        "enrollment",
        "enroll-person",
        &serde_json::json!({"id_number": id_number(20), "name": "居民", "phone": "13900000000",
                            "category": "resident", "insurance_types": ["resident_medical"],
                            "effective_month": "2024-03"}),
    );
    for c in [&resident, &enroll(21, Line::Medical)] {
        let r = send_command(&client, c, WAIT).await.unwrap();
        assert_eq!(r.status, ReplyStatus::Ok, "{r:?}");
    }
    let order = FreezeOrder {
        id: "wuhan-2021-resident-medical".into(),
        scope: FreezeScope {
            lines: vec![Line::Medical],
            services: vec!["enrollment".into()],
            operations: vec!["registration".into()],
            payer_kinds: vec!["resident".into()],
            ..Default::default()
        },
        mode: FreezeMode::Suspended,
        starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
        ends_at: None,
        reason: "城乡居民医保参保登记、变更暂停".into(),
        announcement: "咨询电话：027-87812393".into(),
        deadlines: Default::default(),
        redirect_to: None,
    };
    control(
        &env,
        &ControlMessage::Order {
            order: Box::new(order),
        },
    )
    .await;
    order_stored(&env.pool("enrollment").await).await;
    let change = |n: u32, phone: &str| {
        messaging::client::Command::new(
            Line::Medical,
            "enrollment",
            "change-contact",
            &serde_json::json!({"id_number": id_number(n), "phone": phone}),
        )
    };
    let r = wait_for("the resident's change suspended", WAIT, || async {
        let r = send_command(&client, &change(20, "13900000020"), WAIT)
            .await
            .ok()?;
        (r.status == ReplyStatus::Suspended).then_some(r)
    })
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["order"],
        "wuhan-2021-resident-medical",
        "{r:?}"
    );
    let r = send_command(&client, &change(21, "13900000021"), WAIT)
        .await
        .unwrap();
    assert_eq!(
        r.status,
        ReplyStatus::Ok,
        "a flexible worker's change goes through: {r:?}"
    );
    app.stop().await;
}

/// A held request's command was acked at intake, so nothing redelivers it: when the service
/// stops between the thaw's commit and the broker's confirm of the final reply, the reply must
/// still reach the requester. The thaw records each confirmed reply; a row processed and
/// never confirmed (made so here, as a crash at that point leaves it) is sent again as stored,
/// to its `reply_to` with its correlation id, when the service is back.
#[tokio::test]
async fn a_final_reply_never_confirmed_is_sent_again_after_a_restart() {
    use futures_util::StreamExt;

    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let pool = app_freeze(&env).await;
    let order = FreezeOrder {
        id: "test-lost-reply".into(),
        scope: FreezeScope {
            lines: vec![Line::Medical],
            ..Default::default()
        },
        mode: FreezeMode::IntakeOnly,
        starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
        ends_at: None,
        reason: "cutover drill".into(),
        announcement: "医保系统切换，柜台收件，咨询电话12393".into(),
        deadlines: Default::default(),
        redirect_to: None,
    };
    control(
        &env,
        &ControlMessage::Order {
            order: Box::new(order),
        },
    )
    .await;
    order_stored(&pool).await;
    let held = enroll(21, Line::Medical).with_message_id(Uuid::now_v7());
    wait_for("a deferred reply", WAIT, || async {
        let r = send_command(&client, &held, WAIT).await.ok()?;
        (r.status == ReplyStatus::Deferred).then_some(())
    })
    .await;
    control(
        &env,
        &ControlMessage::Lift {
            id: "test-lost-reply".into(),
        },
    )
    .await;
    let db = pool.get().await.unwrap();
    let message_id = held.message_id.unwrap();
    let confirmed = || async {
        db.query_opt(
            "select reply from backlog where message_id = $1 and reply_confirmed_at is not null",
            &[&message_id],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get::<_, serde_json::Value>(0))
    };
    let stored = wait_for("the thaw's reply confirmed", WAIT, confirmed).await;
    assert_eq!(stored["status"], "ok", "{stored}");
    app.stop().await;

    // The state a crash after the commit leaves: processed, the reply never confirmed; the
    // requester now listens on a queue of its own.
    let requester = env.private_queue(Default::default()).await;
    let mut replies = requester.consume(true).await;
    let n = db
        .execute(
            "update backlog set reply_confirmed_at = null, reply_to = $2, correlation_id = 'lost-reply',
                 processed_at = now() - interval '1 minute'
             where message_id = $1",
            &[&message_id, &requester.name.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);

    let app = common::spawn(&env).await;
    let d = tokio::time::timeout(WAIT, replies.next())
        .await
        .expect("the unconfirmed reply sent again")
        .expect("a delivery")
        .expect("a delivery");
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("lost-reply")
    );
    let reply: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
    assert_eq!(reply, stored, "the stored final reply, as it was");
    let again = wait_for("the resent reply confirmed", WAIT, confirmed).await;
    assert_eq!(again, stored);
    let persons: i64 = db
        .query_one(
            "select count(*) from persons where id_number = $1",
            &[&id_number(21)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(persons, 1, "sent again, not processed again");
    requester.close().await;
    app.stop().await;
}

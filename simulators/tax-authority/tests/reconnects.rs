//! The simulator survives the loss of its broker connections: cut in the middle of a stream
//! of payments, it reconnects by itself, reports what was left, and goes on paying what is
//! assessed afterwards, never paying anything twice.

mod common;

use contracts::Line;
use rust_decimal::Decimal;
use serde_json::json;
use std::time::Duration;
use tax_authority_sim::{Decision, SimConfig, decide};
use testkit::{CuttableProxy, Event, TestEnv, WAIT, id_number, send, wait_for};
use tokio_util::sync::CancellationToken;

/// What `assessment` should have been paid under the simulator's decision for it.
fn expected_paid(assessment: &str, due: Decimal, cfg: &SimConfig) -> Decimal {
    match decide(assessment, cfg) {
        Decision::PayInFull | Decision::PayLate => due,
        Decision::PayHalf => {
            (due / Decimal::TWO).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero)
        }
        Decision::DoNotPay => Decimal::ZERO,
    }
}

/// Assessments (of `events`) whose paid amount is what the simulator decided, and all of them.
async fn settled(db: &deadpool_postgres::Object, events: &[Event], cfg: &SimConfig) -> (usize, usize) {
    let mut done = 0;
    for e in events {
        let id: uuid::Uuid = e.body["assessment_id"].as_str().unwrap().parse().unwrap();
        let row = db
            .query_one(
                "select due::text, paid::text from assessments where assessment_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        let due: Decimal = row.get::<_, String>(0).parse().unwrap();
        let paid: Decimal = row.get::<_, String>(1).parse().unwrap();
        let expect = expected_paid(&id.to_string(), due, cfg);
        assert!(
            paid <= expect,
            "assessment {id} was paid {paid}, more than {expect}: paid twice"
        );
        if paid == expect {
            done += 1;
        }
    }
    (done, events.len())
}

async fn enroll(client: &messaging::client::CommandClient, persons: std::ops::Range<u32>) {
    for n in persons {
        let r = send(
            client,
            Line::Social,
            "enrollment",
            "enroll-person",
            json!({"id_number": id_number(500 + n), "name": "灵活", "phone": "13800000000",
                   "category": "flexible", "insurance_types": ["pension"], "effective_month": "2024-01"}),
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
    }
}

#[tokio::test]
async fn payments_continue_after_the_broker_connections_are_cut() {
    let env = TestEnv::new();
    let shutdown = CancellationToken::new();
    let services = common::start_services(&env, &shutdown).await;
    let _guard = common::Deprovision(&env);
    let (proxy, through_proxy) = CuttableProxy::in_front_of(&common::provision(&env).await).await;
    let sim_cfg = SimConfig {
        amqp_url: through_proxy,
        prefix: env.prefix(),
        subscriber: "tax-authority".into(),
        full: 0.4,
        partial: 0.2,
        // Late payments hold the stream for a moment each, so a cut lands in the middle of it.
        late: 0.2,
        late_by: Duration::from_millis(400),
    };
    let sim = tokio::spawn(tax_authority_sim::run(sim_cfg.clone(), shutdown.clone()));

    let client = env.client().await;
    let mut tap = env.tap("social.collection.contribution-assessed").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let covered = |n: i64| {
        let cdb = &cdb;
        async move {
            let found: i64 = cdb
                .query_one("select count(*) from coverage", &[])
                .await
                .ok()?
                .get(0);
            (found == n).then_some(())
        }
    };
    let assess = |month: &'static str| {
        let client = &client;
        async move {
            let r = send(
                client,
                Line::Social,
                "collection",
                "assess-month",
                json!({"month": month}),
            )
            .await;
            assert!(r.is_ok(), "{r:?}");
        }
    };

    // April: ten flexible workers assessed; the connections are cut once payments flow.
    enroll(&client, 0..10).await;
    wait_for("the projection of ten persons", WAIT, || covered(10)).await;
    assess("2024-04").await;
    let april = tap.expect_n("social.collection.contribution-assessed", 10).await;
    wait_for("the first April payment", WAIT, || async {
        let (done, _) = settled(&cdb, &april, &sim_cfg).await;
        (done > 0).then_some(())
    })
    .await;
    let cut = proxy.cut();
    assert!(
        cut >= 2,
        "the simulator consumes and publishes through the proxy ({cut} connections)"
    );
    let (done_at_cut, total) = settled(&cdb, &april, &sim_cfg).await;
    tracing::info!(done_at_cut, total, "connections cut mid-stream");
    wait_for("every April assessment paid as decided", WAIT * 2, || async {
        let (done, total) = settled(&cdb, &april, &sim_cfg).await;
        (done == total).then_some(())
    })
    .await;

    // May, assessed after the cut: paid through the new connections; cut again meanwhile.
    enroll(&client, 10..15).await;
    wait_for("the projection of fifteen persons", WAIT, || covered(15)).await;
    assess("2024-05").await;
    let may = tap.expect_n("social.collection.contribution-assessed", 15).await;
    wait_for("the first May payment", WAIT, || async {
        let (done, _) = settled(&cdb, &may, &sim_cfg).await;
        (done > 0).then_some(())
    })
    .await;
    let cut = proxy.cut();
    assert!(
        cut >= 2,
        "the simulator reconnected through the proxy ({cut} connections)"
    );
    wait_for("every May assessment paid as decided", WAIT * 2, || async {
        let (done, total) = settled(&cdb, &may, &sim_cfg).await;
        (done == total).then_some(())
    })
    .await;
    let paying = april
        .iter()
        .chain(&may)
        .filter(|e| decide(e.body["assessment_id"].as_str().unwrap(), &sim_cfg) != Decision::DoNotPay)
        .count();
    assert!(paying > 0, "the shares should lead to some payments");
    // Nothing was paid twice (checked in `settled`), and April stays as it was.
    assert_eq!(settled(&cdb, &april, &sim_cfg).await, (10, 10));

    assert!(
        !sim.is_finished(),
        "the simulator is still running after two cuts"
    );
    shutdown.cancel();
    let stats = tokio::time::timeout(WAIT, sim)
        .await
        .expect("the simulator stops on shutdown")
        .unwrap()
        .unwrap();
    // Redelivered events are reported again with the same receipt and answered `ok`.
    assert!(stats.paid as usize >= paying, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
    for s in services {
        s.await.unwrap().unwrap();
    }
}

//! The tax authority as an external subscriber, end to end: provisioned by the operator tool,
//! it sees assessments only through its own queue and answers with payments.

mod common;

use contracts::Line;
use serde_json::json;
use std::time::Duration;
use tax_authority_sim::{Decision, SimConfig, decide};
use testkit::{TestEnv, WAIT, id_number, send, wait_for};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_simulated_tax_authority_pays_through_its_own_subscription() {
    let env = TestEnv::new();
    let shutdown = CancellationToken::new();
    let services = common::start_services(&env, &shutdown).await;

    // The operator provisions the tax authority: its queue, user and permissions.
    let _guard = common::Deprovision(&env);
    let sim_cfg = SimConfig {
        amqp_url: common::provision(&env).await,
        prefix: env.prefix(),
        subscriber: "tax-authority".into(),
        full: 0.5,
        partial: 0.25,
        late: 0.0,
        late_by: Duration::ZERO,
    };
    let sim = tokio::spawn(tax_authority_sim::run(sim_cfg.clone(), shutdown.clone()));

    // Ten flexible workers on the social line, assessed for a month.
    let client = env.client().await;
    let mut tap = env.tap("social.collection.*").await;
    for n in 0..10 {
        let r = send(
            &client,
            Line::Social,
            "enrollment",
            "enroll-person",
            json!({
            "id_number": id_number(300 + n), "name": "灵活", "phone": "13800000000", "category": "flexible",
            "insurance_types": ["pension"], "effective_month": "2024-01"}),
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
    }
    let cdb = env.pool("collection").await.get().await.unwrap();
    wait_for("the projection", WAIT, || async {
        let n: i64 = cdb
            .query_one("select count(*) from coverage", &[])
            .await
            .ok()?
            .get(0);
        (n == 10).then_some(())
    })
    .await;
    let r = send(
        &client,
        Line::Social,
        "collection",
        "assess-month",
        json!({"month": "2024-04"}),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["payers_assessed"], 10, "{r:?}");
    let assessed = tap.expect_n("social.collection.contribution-assessed", 10).await;

    // Every assessment the simulator decided to pay is paid, in full or half; the rest not.
    let expected_payments = assessed
        .iter()
        .filter(|e| decide(e.body["assessment_id"].as_str().unwrap(), &sim_cfg) != Decision::DoNotPay)
        .count();
    assert!(expected_payments > 0, "the shares should lead to some payments");
    tap.expect_n("social.collection.payment-recorded", expected_payments)
        .await;
    for e in &assessed {
        let id: uuid::Uuid = e.body["assessment_id"].as_str().unwrap().parse().unwrap();
        let row = cdb
            .query_one(
                "select due::text, paid::text from assessments where assessment_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        let (due, paid): (String, String) = (row.get(0), row.get(1));
        let due_d: rust_decimal::Decimal = due.parse().unwrap();
        let expect = match decide(&id.to_string(), &sim_cfg) {
            Decision::PayInFull | Decision::PayLate => due_d,
            Decision::PayHalf => (due_d / rust_decimal::Decimal::TWO)
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero),
            Decision::DoNotPay => rust_decimal::Decimal::ZERO,
        };
        assert_eq!(
            paid.parse::<rust_decimal::Decimal>().unwrap(),
            expect,
            "assessment {id} (due {due})"
        );
    }

    // What was not paid in full becomes arrears at the deadline.
    let unpaid = assessed.iter().filter(|e| {
        !matches!(
            decide(e.body["assessment_id"].as_str().unwrap(), &sim_cfg),
            Decision::PayInFull | Decision::PayLate
        )
    });
    let r = send(
        &client,
        Line::Social,
        "collection",
        "detect-arrears",
        json!({"as_of": "2024-06-01"}),
    )
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["newly_in_arrears"].as_i64().unwrap() as usize,
        unpaid.count(),
        "{r:?}"
    );

    shutdown.cancel();
    let stats = sim.await.unwrap().unwrap();
    assert_eq!(stats.paid as usize, expected_payments);
    assert_eq!(stats.rejected, 0);
    for s in services {
        s.await.unwrap().unwrap();
    }
}

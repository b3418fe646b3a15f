//! A simulated day at a hospital against the real services: every settlement reconciles.

#[path = "../../../services/benefits/tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use testkit::{TestEnv, credit_code, id_number};

#[tokio::test]
async fn a_seeded_day_settles_cancels_reverses_and_reconciles() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let ids: Vec<String> = (931..934).map(id_number).collect();
    let psns = covered_staff(&client, &env, &credit_code(931), &ids).await;
    let mut patients: Vec<institution_sim::Patient> = psns
        .iter()
        .zip(&ids)
        .map(|(p, i)| institution_sim::Patient {
            psn_no: p.clone(),
            id_number: i.clone(),
        })
        .collect();
    // A first-time flexible worker: not eligible, registered self-paid.
    let flex_id = id_number(934);
    let flex = enroll(
        &client,
        &flex_id,
        "flexible",
        None,
        "2024-01",
        json!(["employee_medical"]),
    )
    .await;
    testkit::wait_for("benefits to know the flexible worker", testkit::WAIT, || async {
        (count(
            &env,
            B,
            &format!("select count(*) from persons where person_id = '{flex}'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    patients.push(institution_sim::Patient {
        psn_no: flex,
        id_number: flex_id,
    });
    let cfg = institution_sim::DayConfig {
        fixmedins_code: H3.into(),
        seed: 7,
        visits: 24,
        begntime: "2024-05-10T09:00:00+08:00".into(),
        patients,
        wait: Duration::from_secs(20),
    };
    let report = institution_sim::run_day(&client, &cfg)
        .await
        .expect("the day runs");
    assert_eq!(
        report.settled + report.cancelled + report.reversed,
        24,
        "{report:?}"
    );
    assert!(
        report.reversed > 0 && report.cancelled > 0 && report.repeated > 0 && report.not_eligible > 0,
        "seed 7 exercises every path: {report:?}"
    );
    assert_eq!(
        (report.totals_rslt.as_str(), report.details_rslt.as_str()),
        ("0", "0"),
        "{report:?}"
    );
    // The next day, same seed: the institution's msgids are new (they carry the day's start),
    // so nothing of the first day is found again under them (`make run` twice failed here).
    let next = institution_sim::DayConfig {
        begntime: "2024-05-11T09:00:00+08:00".into(),
        ..cfg
    };
    let second = institution_sim::run_day(&client, &next)
        .await
        .expect("the next day runs");
    assert_eq!(
        (second.settled, second.cancelled, second.reversed, second.repeated),
        (report.settled, report.cancelled, report.reversed, report.repeated),
        "the same seed, the same day's course: {second:?}"
    );
    // Its 3201/3202 compare the service's books for the settlement date (today, for both
    // runs) with this run's books only: they differ, and say so; the service's own books
    // balance.
    assert_eq!(
        (second.totals_rslt.as_str(), second.details_rslt.as_str()),
        ("1", "1"),
        "{second:?}"
    );
    let svc = ok(&client, "reconcile-service", json!({})).await;
    assert_eq!(svc["balanced"], true, "{svc}");
    app.stop().await;
}

//! Freeze orders move collection's deadlines (issue 7 §4), through the broker: the Wuhan
//! settlement stop of December 2021 extends that month's deadline from 12-26 to 2022-01-04
//! on the medical line only; an open-ended stop holds every judgement of arrears until the
//! thaw gives it an end, and then the deadline is extended exactly by what it took.

mod common;

use common::ok;

use contracts::Line;
use contracts::freeze::{ControlMessage, DeadlineEffect, FreezeMode, FreezeOrder, FreezeScope};
use serde_json::json;
use testkit::services::control;
use testkit::{TestEnv, WAIT, credit_code, id_number, wait_for};

const C: &str = "collection";
const E: &str = "enrollment";

fn cst(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s).expect("a time")
}

/// An employer with one employee in `insurance_type` on `line` from 2021-12, with a 2021 base.
async fn employer(
    env: &TestEnv,
    client: &messaging::client::CommandClient,
    seed: u32,
    line: Line,
    insurance_type: &str,
) {
    let code = credit_code(seed);
    ok(
        client,
        line,
        E,
        "register-employer",
        json!({"credit_code": code, "name": "单位", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    let id = id_number(seed);
    ok(
        client,
        line,
        E,
        "add-staff",
        json!({"employer_credit_code": code, "persons": [{"id_number": id, "name": "员工", "phone": "13800000000"}],
               "insurance_types": [insurance_type], "month": "2021-12"}),
    )
    .await;
    let db = env.pool(C).await.get().await.unwrap();
    wait_for("the projection has the employee", WAIT, || async {
        let n: i64 = db
            .query_one(
                "select count(*) from coverage c join persons p using (person_id) where p.id_number = $1",
                &[&id],
            )
            .await
            .ok()?
            .get(0);
        (n > 0).then_some(())
    })
    .await;
    ok(
        client,
        line,
        C,
        "declare-wages",
        json!({"employer_credit_code": code, "year": 2021, "wages": [{"id_number": id, "previous_year_average": "6046.00"}]}),
    )
    .await;
}

fn order(id: &str, starts: &str, ends: Option<&str>, payer_kinds: &[&str]) -> ControlMessage {
    ControlMessage::Order {
        order: Box::new(FreezeOrder {
            id: id.into(),
            scope: FreezeScope {
                lines: vec![Line::Medical],
                // Payments only, and only these payers: the rest of the line keeps working.
                operations: vec!["payment".into()],
                payer_kinds: payer_kinds.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            mode: FreezeMode::Suspended,
            starts_at: cst(starts),
            ends_at: ends.map(cst),
            reason: "医保系统切换".into(),
            announcement: "医保系统切换，咨询电话027-87812393".into(),
            deadlines: DeadlineEffect::Extend,
            redirect_to: None,
        }),
    }
}

async fn detect(client: &messaging::client::CommandClient, line: Line, as_of: &str) -> i64 {
    ok(client, line, C, "detect-arrears", json!({"as_of": as_of})).await["newly_in_arrears"]
        .as_i64()
        .expect("a count")
}

#[tokio::test]
async fn the_wuhan_settlement_stop_extends_decembers_deadline_on_its_line_only() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut medical = env.tap("medical.collection.*").await;
    let mut social = env.tap("social.collection.*").await;
    employer(&env, &client, 701, Line::Medical, "employee_medical").await;
    employer(&env, &client, 702, Line::Social, "pension").await;
    // Announced before December is assessed (DOMAIN.md §8: 12-22 18:00 → 12-31 23:00).
    let r = control(
        &env,
        C,
        &order(
            "wuhan-stop",
            "2021-12-22T18:00:00+08:00",
            Some("2021-12-31T23:00:00+08:00"),
            &[],
        ),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");

    ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2021-12"}),
    )
    .await;
    let assessed = medical
        .expect("medical.collection.contribution-assessed")
        .await
        .body;
    // Plain: before the last 5 working days (12-27 … 12-31), so 12-26. The stop takes 4 whole
    // days of it, given back from 01-01; New Year (01-01 … 01-03) makes it 01-04.
    assert_eq!(assessed["deadline"], "2022-01-04", "{assessed}");
    ok(
        &client,
        Line::Social,
        C,
        "assess-month",
        json!({"month": "2021-12"}),
    )
    .await;
    let untouched = social
        .expect("social.collection.contribution-assessed")
        .await
        .body;
    assert_eq!(
        untouched["deadline"], "2021-12-26",
        "the social line was not stopped: {untouched}"
    );

    // 01-04 + 5 working days of arrival is 01-11: not judged on 01-10; the social line's
    // 12-26 + 5 working days (12-31) is.
    assert_eq!(detect(&client, Line::Medical, "2022-01-10").await, 0);
    assert_eq!(detect(&client, Line::Social, "2022-01-10").await, 1);
    let social_arrears = social.expect("social.collection.arrears-detected").await.body;
    assert_eq!(social_arrears["deadline"], "2021-12-26");

    // Paid on the extended deadline: on time, though after the plain one.
    let id = assessed["assessment_id"].as_str().unwrap();
    let amount = assessed["amount"].as_str().unwrap();
    let paid = ok(
        &client,
        Line::Medical,
        C,
        "record-payment",
        json!({"assessment_id": id, "amount": amount, "paid_at": "2022-01-04T16:00:00+08:00", "tax_receipt_no": "T-701"}),
    )
    .await;
    assert_eq!(paid["status"], "settled", "{paid}");
    assert_eq!(paid["deadline"], "2022-01-04");
    let recorded = medical.expect("medical.collection.payment-recorded").await.body;
    assert_eq!(recorded["on_time"], true, "{recorded}");
    assert_eq!(
        detect(&client, Line::Medical, "2022-03-01").await,
        0,
        "paid in time, never in arrears"
    );

    client.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_open_ended_stop_holds_arrears_until_the_thaw_then_extends_exactly() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut medical = env.tap("medical.collection.*").await;
    employer(&env, &client, 711, Line::Medical, "employee_medical").await;
    ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2021-12"}),
    )
    .await;
    let assessed = medical
        .expect("medical.collection.contribution-assessed")
        .await
        .body;
    assert_eq!(assessed["deadline"], "2021-12-26");

    // Wuhan's employee-medical stop from 12-15 17:30, its end to be announced (另行通知),
    // sent after December was assessed: it still moves December's deadline.
    let open = order(
        "wuhan-employee",
        "2021-12-15T17:30:00+08:00",
        None,
        &["employer", "flexible"],
    );
    assert!(control(&env, C, &open).await.is_ok());
    assert_eq!(
        detect(&client, Line::Medical, "2022-06-01").await,
        0,
        "no arrears while the stop that covers the deadline has no end"
    );

    // The thaw: the order ends 2022-01-10 00:00. It took 11 whole days (12-15 17:30 to the
    // end of 12-26), given back from 01-10: 01-20, judged after 5 working days of arrival.
    let thaw = ControlMessage::Extend {
        id: "wuhan-employee".into(),
        until: cst("2022-01-10T00:00:00+08:00"),
    };
    assert!(control(&env, C, &thaw).await.is_ok());
    assert_eq!(
        detect(&client, Line::Medical, "2022-01-27").await,
        0,
        "01-20 + 5 working days is 01-27"
    );
    assert_eq!(detect(&client, Line::Medical, "2022-01-28").await, 1);
    let arrears = medical.expect("medical.collection.arrears-detected").await.body;
    assert_eq!(arrears["deadline"], "2022-01-20", "{arrears}");
    assert_eq!(arrears["system_caused"], false);
    assert_eq!(
        arrears["benefits_affected_from"], "2022-04-01",
        "Wuhan: from 4月1日起"
    );

    client.close().await;
    app.stop().await;
}

/// A payment names only its assessment: the gate finds the payer kind itself, so an order
/// that stops employers' payments refuses an employer's, and one that stops flexible
/// workers' lets it through.
#[tokio::test]
async fn a_payment_stop_scoped_by_payer_kind_finds_the_payer_of_the_assessment() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut medical = env.tap("medical.collection.*").await;
    employer(&env, &client, 721, Line::Medical, "employee_medical").await;
    ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2021-12"}),
    )
    .await;
    let assessed = medical
        .expect("medical.collection.contribution-assessed")
        .await
        .body;
    assert_eq!(assessed["payer_kind"], "employer", "{assessed}");
    let pay = messaging::client::Command::new(
        Line::Medical,
        C,
        "record-payment",
        &json!({"assessment_id": assessed["assessment_id"], "amount": "1.00",
                "paid_at": "2021-12-20T10:00:00+08:00", "tax_receipt_no": "TX-721"}),
    );
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let (start, end) = (
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(1)).to_rfc3339(),
    );
    let stop = |id: &str, payer: &str| order(id, &start, Some(&end), &[payer]);
    assert!(
        control(&env, C, &stop("stop-employers", "employer"))
            .await
            .is_ok()
    );
    let r = testkit::send_command(&client, &pay, WAIT).await.unwrap();
    assert_eq!(r.status, contracts::ReplyStatus::Suspended, "{r:?}");
    assert_eq!(r.result.as_ref().unwrap()["order"], "stop-employers", "{r:?}");
    let lift = ControlMessage::Lift {
        id: "stop-employers".into(),
    };
    assert!(control(&env, C, &lift).await.is_ok());
    assert!(control(&env, C, &stop("stop-flexible", "flexible")).await.is_ok());
    let r = testkit::send_command(&client, &pay, WAIT).await.unwrap();
    assert_eq!(
        r.status,
        contracts::ReplyStatus::Ok,
        "not a flexible worker's payment: {r:?}"
    );
    client.close().await;
    app.stop().await;
}

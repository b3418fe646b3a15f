//! Collection end to end through the broker: enrollment events → projection → wages →
//! assessment → payments → arrears, with the figures of DOMAIN.md §4 (Wuhan seed).

mod common;

use contracts::{ErrorCode, Line};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{TestEnv, WAIT, credit_code, id_number, send, wait_for};

const C: &str = "collection";
const E: &str = "enrollment";

async fn count(db: &deadpool_postgres::Object, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

fn assessed_for<'a>(events: &'a [testkit::Event], payer: &str) -> &'a Value {
    &events
        .iter()
        .find(|e| e.body["payer_id"] == payer)
        .unwrap_or_else(|| panic!("no assessment for {payer}"))
        .body
}

#[tokio::test]
async fn enroll_declare_assess_pay_and_fall_into_arrears() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.*").await;
    let cdb = env.pool("collection").await.get().await.unwrap();

    // Enrollment: an employer with two employees, a flexible worker, a retiree.
    let employer = credit_code(42);
    let r = send(
        &client,
        Line::Medical,
        E,
        "register-employer",
        json!({
        "credit_code": employer, "name": "武汉某公司", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let (alice, bob, carol, dave) = (id_number(1), id_number(2), id_number(3), id_number(4));
    for (id, category, types, emp) in [
        (&alice, "employee", json!(["employee_medical"]), Some(&employer)),
        (&bob, "employee", json!(["employee_medical"]), Some(&employer)),
        (&carol, "flexible", json!(["employee_medical"]), None),
        (
            &dave,
            "retiree",
            json!(["employee_medical", "large_amount_medical"]),
            None,
        ),
    ] {
        let mut body = json!({"id_number": id, "name": "参保人", "phone": "13800000000", "category": category,
                              "insurance_types": types, "effective_month": "2024-01"});
        if let Some(code) = emp {
            body["employer_credit_code"] = json!(code);
        }
        let r = send(&client, Line::Medical, E, "enroll-person", body).await;
        assert!(r.is_ok(), "{r:?}");
    }
    wait_for("collection's projection of the enrollments", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 5).then_some(())
    })
    .await;

    // Wages → bases with the clamp of DOMAIN.md §4.
    let r = send(
        &client,
        Line::Medical,
        C,
        "declare-wages",
        json!({
        "employer_credit_code": employer, "year": 2024,
        "wages": [{"id_number": alice, "previous_year_average": "5000.00"},
                  {"id_number": bob, "previous_year_average": "25000.00"}]}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let bases = &r.result.unwrap()["bases"];
    assert_eq!(bases[0]["base"], "5000.00");
    assert_eq!(bases[0]["source"], "previous-year-average");
    assert_eq!(
        (bases[1]["base"].as_str(), bases[1]["clamp"].as_str()),
        (Some("18138.00"), Some("lowered-to-cap"))
    );
    tap.expect_n("medical.collection.base-determined", 2).await;

    // Assessment: employer 8% + 2% per employee, flexible 6% of the standard base,
    // retiree only the 7-yuan large-amount premium.
    let r = send(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2024-03"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let res = r.result.unwrap();
    assert_eq!(res["payers_assessed"], 3);
    // 400 + 100 + 1451.04 + 362.76 + 362.76 + 7.00
    assert_eq!(res["total_change"], "2683.56");
    assert_eq!(
        res["skipped"], 0,
        "the retiree owes no basic medical contribution but is not skipped"
    );
    let events = tap.expect_n("medical.collection.contribution-assessed", 3).await;
    let emp = assessed_for(&events, &employer);
    assert_eq!(emp["amount"], "2313.80");
    assert_eq!(emp["kind"], "initial");
    assert_eq!(
        emp["deadline"], "2024-03-24",
        "Wuhan pays March within March, before its last 5 working days (03-25 … 03-29)"
    );
    let lines = emp["lines"].as_array().unwrap();
    assert_eq!(
        lines[0],
        json!({"insurance_type": "employee_medical", "share": "employee", "persons": 2, "amount": "462.76"})
    );
    assert_eq!(
        lines[1],
        json!({"insurance_type": "employee_medical", "share": "employer", "persons": 2, "amount": "1851.04"})
    );
    let carol_id: String = cdb
        .query_one(
            "select person_id::text from persons where id_number = $1",
            &[&carol],
        )
        .await
        .unwrap()
        .get(0);
    let dave_id: String = cdb
        .query_one(
            "select person_id::text from persons where id_number = $1",
            &[&dave],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(assessed_for(&events, &carol_id)["amount"], "362.76");
    assert_eq!(
        assessed_for(&events, &carol_id)["deadline"],
        "2024-03-24",
        "a flexible worker without a bank agreement pays by the ordinary deadline"
    );
    assert_eq!(assessed_for(&events, &dave_id)["amount"], "7.00");

    // Re-running the month changes nothing.
    let r = send(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2024-03"}),
    )
    .await;
    assert_eq!(
        (
            r.result.as_ref().unwrap()["payers_assessed"].as_i64(),
            r.result.as_ref().unwrap()["total_change"].as_str()
        ),
        (Some(0), Some("0.00"))
    );
    assert!(
        tap.next(Duration::from_millis(500)).await.is_none(),
        "no event for a repeat"
    );

    // A wage correction produces an adjustment (补差), not a rewrite.
    let r = send(&client, Line::Medical, C, "declare-wages", json!({
        "employer_credit_code": employer, "year": 2024, "wages": [{"id_number": alice, "previous_year_average": "6000.00"}]})).await;
    assert!(r.is_ok(), "{r:?}");
    tap.expect("medical.collection.base-determined").await;
    let r = send(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2024-03"}),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["total_change"], "100.00", "{r:?}");
    let adj = tap.expect("medical.collection.contribution-assessed").await.body;
    assert_eq!(
        (
            adj["kind"].as_str(),
            adj["amount"].as_str(),
            adj["total_due"].as_str()
        ),
        (Some("adjustment"), Some("100.00"), Some("2413.80"))
    );
    let employer_assessment = adj["assessment_id"].as_str().unwrap().to_owned();

    // Payments: partial, then the rest → settled.
    let pay = |id: &str, amount: &str, receipt: &str| {
        json!({"assessment_id": id, "amount": amount,
        "paid_at": "2024-04-10T10:00:00+08:00", "tax_receipt_no": receipt})
    };
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&employer_assessment, "1000.00", "T-1"),
    )
    .await;
    assert_eq!(
        (
            r.result.as_ref().unwrap()["status"].as_str(),
            r.result.as_ref().unwrap()["outstanding"].as_str()
        ),
        (Some("partially-paid"), Some("1413.80")),
        "{r:?}"
    );
    assert_eq!(
        tap.expect("medical.collection.payment-recorded").await.body["outstanding"],
        "1413.80"
    );
    let again = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&employer_assessment, "1000.00", "T-1"),
    )
    .await;
    assert_eq!(
        again.result.as_ref().unwrap()["paid"],
        "1000.00",
        "the same receipt is not counted twice"
    );
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&employer_assessment, "5.00", "T-1"),
    )
    .await;
    assert_eq!(r.error_code(), Some(ErrorCode::Conflict));
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&employer_assessment, "1413.80", "T-2"),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["status"], "settled", "{r:?}");
    tap.expect("medical.collection.contribution-settled").await;

    // Overpayment, unknown assessment, bad amount.
    let carol_assessment = assessed_for(&events, &carol_id)["assessment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&carol_assessment, "400.00", "T-3"),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["status"], "overpaid", "{r:?}");
    assert_eq!(
        tap.expect("medical.collection.overpayment-detected").await.body["excess"],
        "37.24"
    );
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay("01900000-0000-7000-8000-000000000009", "1.00", "T-4"),
    )
    .await;
    assert_eq!(
        (r.error_code(), r.error.as_ref().unwrap().field.as_deref()),
        (Some(ErrorCode::NotFound), Some("assessment_id"))
    );
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&carol_assessment, "1.001", "T-5"),
    )
    .await;
    assert_eq!(
        (r.error_code(), r.error.as_ref().unwrap().field.as_deref()),
        (Some(ErrorCode::InvalidField), Some("amount"))
    );

    // The retiree did not pay: arrears after the deadline, cleared by back-payment.
    let r = send(
        &client,
        Line::Medical,
        C,
        "detect-arrears",
        json!({"as_of": "2024-03-29"}),
    )
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["newly_in_arrears"],
        0,
        "a payment made by 03-24 may reach the fund up to 5 working days later (03-29)"
    );
    let r = send(
        &client,
        Line::Medical,
        C,
        "detect-arrears",
        json!({"as_of": "2024-04-01"}),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["newly_in_arrears"], 1, "{r:?}");
    let arrears = tap.expect("medical.collection.arrears-detected").await.body;
    assert_eq!(
        (
            arrears["benefits_affected_from"].as_str(),
            arrears["system_caused"].as_bool()
        ),
        (Some("2024-04-01"), Some(false)),
        "the 1st of the month after the missed deadline (after Wuhan's 2022-04-01 start)"
    );
    assert_eq!(
        (arrears["payer_id"].as_str(), arrears["outstanding"].as_str()),
        (Some(dave_id.as_str()), Some("7.00"))
    );
    assert_eq!(arrears["persons"], json!([dave_id]));
    let r = send(&client, Line::Medical, C, "list-arrears", json!({})).await;
    assert_eq!(r.result.as_ref().unwrap()["arrears"].as_array().unwrap().len(), 1);
    let dave_assessment = arrears["assessment_id"].as_str().unwrap().to_owned();
    let r = send(
        &client,
        Line::Medical,
        C,
        "record-payment",
        pay(&dave_assessment, "7.00", "T-6"),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["in_arrears"], false, "{r:?}");
    assert_eq!(
        tap.expect("medical.collection.arrears-cleared").await.body["persons"],
        json!([dave_id])
    );

    // Queries.
    let r = send(
        &client,
        Line::Medical,
        C,
        "employer-statement",
        json!({"employer_credit_code": employer, "month": "2024-03"}),
    )
    .await;
    let st = r.result.unwrap();
    assert_eq!(st["assessment"]["due"], "2413.80");
    assert_eq!(
        st["lines"].as_array().unwrap().len(),
        4,
        "2 persons × employer/employee shares"
    );
    let alice_employer = st["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id_number"] == alice.as_str() && l["share"] == "employer")
        .unwrap()
        .clone();
    assert_eq!(alice_employer["amount"], "480.00", "8% of the corrected 6000");
    let r = send(
        &client,
        Line::Medical,
        C,
        "contribution-history",
        json!({"id_number": alice}),
    )
    .await;
    let months = r.result.unwrap()["months"].as_array().unwrap().clone();
    assert_eq!(months.len(), 1);
    assert_eq!(
        (
            months[0]["employer_share"].as_str(),
            months[0]["own_share"].as_str(),
            months[0]["paid"].as_bool()
        ),
        (Some("480.00"), Some("120.00"), Some(true))
    );

    // Nothing stuck.
    wait_for("outbox drained", WAIT, || async {
        (count(&cdb, "select count(*) from outbox where published_at is null").await == 0).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn bank_batch_debit_holds_other_payments_until_the_bank_reports() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("social.collection.*").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (erin, frank) = (id_number(10), id_number(11));
    for id in [&erin, &frank] {
        let r = send(
            &client,
            Line::Social,
            E,
            "enroll-person",
            json!({"id_number": id, "name": "灵活", "phone": "13800000000",
            "category": "flexible", "insurance_types": ["pension"], "effective_month": "2024-01"}),
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
    }
    let grace = id_number(12);
    let r = send(
        &client,
        Line::Social,
        E,
        "enroll-person",
        json!({"id_number": grace, "name": "灵活", "phone": "13800000000",
        "category": "flexible", "insurance_types": ["pension"], "effective_month": "2024-01"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 3).then_some(())
    })
    .await;
    // Erin and Frank signed a bank agreement; Grace pays by herself.
    for id in [&erin, &frank] {
        let r = send(
            &client,
            Line::Social,
            C,
            "set-debit-agreement",
            json!({"id_number": id, "signed": true, "from_month": "2024-05",
                   "bank": "合作银行", "account": "6222 0000 0000 0000 123"}),
        )
        .await;
        assert_eq!(r.result.as_ref().unwrap()["signed"], true, "{r:?}");
    }
    let r = send(
        &client,
        Line::Social,
        C,
        "assess-month",
        json!({"month": "2024-05"}),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["payers_assessed"], 3, "{r:?}");
    let assessed = tap.expect_n("social.collection.contribution-assessed", 3).await;
    let grace_id: String = cdb
        .query_one(
            "select person_id::text from persons where id_number = $1",
            &[&grace],
        )
        .await
        .unwrap()
        .get(0);
    for e in &assessed {
        let expected = if e.body["payer_id"] == grace_id.as_str() {
            "2024-05-26" // before the last 5 working days of May (05-27 … 05-31)
        } else {
            "2024-05-20" // the debit day: funds on the card by the 20th
        };
        assert_eq!(e.body["deadline"], expected, "{}", e.body);
        // The two with a bank agreement are collected by batch debit, and the event says so.
        assert_eq!(
            e.body["batch_debit"],
            e.body["payer_id"] != grace_id.as_str(),
            "{}",
            e.body
        );
    }

    let r = send(
        &client,
        Line::Social,
        C,
        "start-batch-debit",
        json!({"month": "2024-05"}),
    )
    .await;
    let batch = r.result.unwrap();
    assert_eq!(
        batch["item_count"], 2,
        "only the two with a bank agreement are debited"
    );
    let requested = tap.expect("social.collection.batch-debit-requested").await.body;
    assert_eq!(requested["total"], batch["total"]);
    let items = requested["items"].as_array().unwrap().clone();

    // During the window no other payment is accepted.
    let r = send(
        &client,
        Line::Social,
        C,
        "record-payment",
        json!({"assessment_id": items[0]["assessment_id"], "amount": "1.00",
        "paid_at": "2024-06-20T09:00:00+08:00", "tax_receipt_no": "T-9"}),
    )
    .await;
    assert_eq!(
        (r.error_code(), r.error.as_ref().unwrap().field.as_deref()),
        (Some(ErrorCode::Conflict), Some("assessment_id")),
        "{r:?}"
    );

    // The bank reports: one debited, one failed.
    let r = send(
        &client,
        Line::Social,
        C,
        "record-debit-results",
        json!({"batch_id": batch["batch_id"], "debited_at": "2024-06-20T18:00:00+08:00",
        "results": [{"assessment_id": items[0]["assessment_id"], "ok": true},
                    {"assessment_id": items[1]["assessment_id"], "ok": false, "reason": "余额不足"}]}),
    )
    .await;
    assert_eq!(
        (
            r.result.as_ref().unwrap()["debited"].as_i64(),
            r.result.as_ref().unwrap()["failed"].as_i64()
        ),
        (Some(1), Some(1)),
        "{r:?}"
    );
    let settled = tap.expect("social.collection.contribution-settled").await.body;
    assert_eq!(settled["assessment_id"], items[0]["assessment_id"]);
    let failed = tap.expect("social.collection.debit-failed").await.body;
    assert_eq!(failed["reason"], "余额不足");
    // The window is closed: the failed one may pay through the tax authority now.
    let r = send(
        &client,
        Line::Social,
        C,
        "record-payment",
        json!({"assessment_id": items[1]["assessment_id"], "amount": items[1]["amount"],
        "paid_at": "2024-06-21T09:00:00+08:00", "tax_receipt_no": "T-10"}),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["status"], "settled", "{r:?}");
    let r = send(
        &client,
        Line::Social,
        C,
        "record-debit-results",
        json!({"batch_id": batch["batch_id"], "debited_at": "2024-06-20T18:00:00+08:00", "results": []}),
    )
    .await;
    assert_eq!(r.error_code(), Some(ErrorCode::Conflict), "a batch reports once");
    app.stop().await;
}

#[tokio::test]
async fn a_late_staff_addition_becomes_an_adjustment_of_the_employers_month() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("social.collection.contribution-assessed").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let employer = credit_code(77);
    let r = send(
        &client,
        Line::Social,
        E,
        "register-employer",
        json!({
        "credit_code": employer, "name": "单位", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let staff = |ids: Vec<String>| {
        json!({"employer_credit_code": employer,
        "persons": ids.iter().map(|id| json!({"id_number": id, "name": "员工", "phone": "13800000000"})).collect::<Vec<_>>(),
        "insurance_types": ["pension"], "month": "2024-03"})
    };
    let (a, b) = (id_number(50), id_number(51));
    assert!(
        send(&client, Line::Social, E, "add-staff", staff(vec![a.clone()]))
            .await
            .is_ok()
    );
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 1).then_some(())
    })
    .await;
    let wages = |id: &str| {
        json!({"employer_credit_code": employer, "year": 2024,
        "wages": [{"id_number": id, "previous_year_average": "5000.00"}]})
    };
    assert!(
        send(&client, Line::Social, C, "declare-wages", wages(&a))
            .await
            .is_ok()
    );
    let r = send(
        &client,
        Line::Social,
        C,
        "assess-month",
        json!({"month": "2024-03"}),
    )
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["total_change"],
        "1200.00",
        "16% + 8% of 5000: {r:?}"
    );
    let first = tap.expect("social.collection.contribution-assessed").await.body;
    assert_eq!(first["kind"], "initial");

    // A colleague declared late for the same month: the month is re-assessed with a
    // difference, and the first assessment's items stay as they were.
    assert!(
        send(&client, Line::Social, E, "add-staff", staff(vec![b.clone()]))
            .await
            .is_ok()
    );
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 2).then_some(())
    })
    .await;
    assert!(
        send(&client, Line::Social, C, "declare-wages", wages(&b))
            .await
            .is_ok()
    );
    let r = send(
        &client,
        Line::Social,
        C,
        "assess-month",
        json!({"month": "2024-03"}),
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap()["total_change"], "1200.00", "{r:?}");
    let adj = tap.expect("social.collection.contribution-assessed").await.body;
    assert_eq!(
        (adj["kind"].as_str(), adj["assessment_id"].as_str()),
        (Some("adjustment"), first["assessment_id"].as_str())
    );
    assert_eq!(
        (adj["amount"].as_str(), adj["total_due"].as_str()),
        (Some("1200.00"), Some("2400.00"))
    );
    assert_eq!(
        adj["lines"][0]["persons"], 1,
        "only the newcomer's lines are in the adjustment"
    );
    let runs = count(&cdb, "select count(distinct run_id) from assessment_items").await;
    assert_eq!(runs, 2, "the first run's items were not rewritten");
    app.stop().await;
}

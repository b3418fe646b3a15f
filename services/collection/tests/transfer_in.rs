//! The Jinan transfer-in flow (issue 8 §1, DOMAIN.md §3): the person is enrolled and pays in
//! the new city first, then sends the participation certificate from the old one; it is
//! accepted for the person already enrolled, and the history it carries is merged into
//! `contribution-history` (months credited there, the pension account moved), once however
//! often the event is delivered.

mod common;

use common::ok;
use contracts::Line;
use serde_json::json;
use testkit::{TestEnv, WAIT, id_number, wait_for};

const C: &str = "collection";
const E: &str = "enrollment";

#[tokio::test]
async fn a_certificate_for_an_enrolled_person_merges_the_carried_history() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut social = env.tap("social.collection.contribution-assessed").await;
    let n = 731;
    let id = id_number(n);
    // Enrolled here as a flexible worker from 2021-12, and December paid.
    let r = testkit::send_command(
        &client,
        &testkit::enroll_flexible(n, Line::Social, "2021-12"),
        WAIT,
    )
    .await
    .unwrap();
    assert!(r.is_ok(), "{r:?}");
    let person = r.result.unwrap()["person_id"].as_str().unwrap().to_owned();
    let db = env.pool(C).await.get().await.unwrap();
    wait_for("collection knows the person", WAIT, || async {
        let n: i64 = db
            .query_one(
                "select count(*) from coverage where person_id::text = $1",
                &[&person],
            )
            .await
            .ok()?
            .get(0);
        (n > 0).then_some(())
    })
    .await;
    ok(
        &client,
        Line::Social,
        C,
        "assess-month",
        json!({"month": "2021-12"}),
    )
    .await;
    let assessed = social
        .expect("social.collection.contribution-assessed")
        .await
        .body;
    assert_eq!(assessed["payer_id"], person.as_str(), "{assessed}");
    ok(
        &client,
        Line::Social,
        C,
        "record-payment",
        json!({"assessment_id": assessed["assessment_id"], "amount": assessed["amount"],
               "paid_at": "2021-12-20T10:00:00+08:00", "tax_receipt_no": "TX-731"}),
    )
    .await;

    // Then the certificate from Jinan: 10 years of pension there, 30000.00 on the account.
    let certificate = uuid::Uuid::now_v7().to_string();
    let transfer = json!({
        "certificate": {"certificate_id": certificate, "id_number": id, "name": format!("参保人{n}"),
                        "insurance_types": ["pension"], "from_region": "370100", "to_region": "420100",
                        "contribution_history_ref": format!("370100:{id}"),
                        "issued_at": "2022-01-05T09:00:00+08:00", "contribution_months": 120,
                        "pension_account_balance": "30000.00"},
        "phone": "13800000731", "category": "flexible", "effective_month": "2021-12"});
    ok(&client, Line::Social, E, "transfer-in", transfer.clone()).await;
    // The same certificate again: accepted once.
    let again = testkit::send(&client, Line::Social, E, "transfer-in", transfer).await;
    assert_eq!(
        again.error_code(),
        Some(contracts::ErrorCode::Conflict),
        "{again:?}"
    );

    let history = wait_for("the carried history merged", WAIT, || async {
        let h = testkit::send(
            &client,
            Line::Social,
            C,
            "contribution-history",
            json!({"id_number": id}),
        )
        .await;
        let h = h.result?;
        (!h["carried"].as_array()?.is_empty()).then_some(h)
    })
    .await;
    assert_eq!(
        history["carried"],
        json!([{"certificate_id": certificate, "from_region": "370100", "insurance_types": ["pension"],
                "effective_month": "2021-12", "months": 120, "pension_account_balance": "30000.00"}]),
        "{history}"
    );
    assert_eq!(
        history["total_months"],
        json!({"pension": 121}),
        "December paid here and 120 months carried: {history}"
    );
    let n: i64 = db
        .query_one("select count(*) from carried_contributions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    client.close().await;
    app.stop().await;
}

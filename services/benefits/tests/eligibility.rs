//! Eligibility from events only, through the real enrollment and collection services: an
//! employee is covered the month after paying; a first-time flexible worker from the 7th
//! paid month; arrears stop coverage from collection's date and back-payment restores it;
//! a retiree with the minimum years keeps basic coverage without paying.

mod common;

use common::*;
use serde_json::json;
use testkit::{TestEnv, credit_code, id_number};

fn month_row(m: &str, eligible: bool, reason: &str) -> (String, bool, String) {
    (m.to_owned(), eligible, reason.to_owned())
}

#[tokio::test]
async fn employee_is_covered_the_month_after_paying_and_the_account_is_credited() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let employer = credit_code(901);
    let alice_id = id_number(901);
    let alice = covered_staff(&client, &env, &employer, std::slice::from_ref(&alice_id)).await[0].clone();

    assert_eq!(
        months(&client, &alice, "2024-02", "2024-05").await,
        vec![
            month_row("2024-02", false, "not-enrolled"),
            month_row("2024-03", false, "not-yet-paid"),
            month_row("2024-04", true, ""),
            month_row("2024-05", true, ""),
        ]
    );
    // 2 % of the 5000.00 base goes to the personal account, as one ledger row.
    let bal = ok(&client, "account-balance", json!({"psn_no": alice})).await;
    assert_eq!(bal["balc"], "100.00");
    let st = ok(&client, "account-statement", json!({"psn_no": alice})).await;
    let entries = st["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{st}");
    assert_eq!(
        (entries[0]["kind"].as_str(), entries[0]["amount"].as_str()),
        (Some("credit"), Some("100.00"))
    );

    // 1101 by ID card: 310 eligible on a day in April, with the balance; masked ID number.
    let info = ok(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": alice_id, "begntime": "2024-04-10T09:00:00+08:00"}),
    )
    .await;
    assert_eq!(info["baseinfo"]["psn_no"], alice.as_str());
    assert_ne!(
        info["baseinfo"]["certno"],
        alice_id.as_str(),
        "the ID number is masked"
    );
    let insu = &info["insuinfo"][0];
    assert_eq!(
        (
            insu["insutype"].as_str(),
            insu["psn_insu_stas"].as_str(),
            insu["eligible"].as_bool(),
            insu["balc"].as_str(),
            insu["month"].as_str()
        ),
        (
            Some("310"),
            Some("1"),
            Some(true),
            Some("100.00"),
            Some("2024-04")
        )
    );
    // In March: not yet.
    let info = ok(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "03", "mdtrt_cert_no": alice_id, "begntime": "2024-03-31 23:00:00"}),
    )
    .await;
    assert_eq!(info["insuinfo"][0]["eligible"], false);
    assert_eq!(info["insuinfo"][0]["not_eligible_reason"], "not-yet-paid");

    // Suspended from June (left the job): covered through May only, status 2 (暂停).
    let r = cmd(
        &client,
        E,
        "suspend",
        json!({"id_number": alice_id, "insurance_types": ["employee_medical"], "reason": "left the job", "month": "2024-06"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let sql =
        format!("select count(*) from enrollments where person_id = '{alice}' and end_reason = 'suspended'");
    testkit::wait_for("benefits to see the suspension", testkit::WAIT, || async {
        (count(&env, B, &sql).await == 1).then_some(())
    })
    .await;
    assert_eq!(
        months(&client, &alice, "2024-05", "2024-06").await,
        vec![
            month_row("2024-05", true, ""),
            month_row("2024-06", false, "suspended")
        ]
    );
    let info = ok(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": alice_id, "begntime": "2024-06-10T09:00:00+08:00"}),
    )
    .await;
    assert_eq!(
        (
            info["insuinfo"][0]["psn_insu_stas"].as_str(),
            info["insuinfo"][0]["eligible"].as_bool()
        ),
        (Some("2"), Some(false))
    );
    app.stop().await;
}

#[tokio::test]
async fn flexible_worker_from_the_seventh_month_and_arrears_stop_and_restore() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    // A flexible worker on first enrollment, and a retiree who reached the minimum years.
    let carol = enroll(
        &client,
        &id_number(911),
        "flexible",
        None,
        "2024-01",
        json!(["employee_medical"]),
    )
    .await;
    let dave = enroll(
        &client,
        &id_number(912),
        "retiree",
        None,
        "2024-01",
        json!(["employee_medical", "large_amount_medical"]),
    )
    .await;
    collection_sees(&env, 3).await;
    for m in ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"] {
        assess(&client, m).await;
        pay(&client, &env, &carol, m, &format!("{m}-10T10:00:00+08:00")).await;
        benefits_paid(&env, &carol, m).await;
    }
    assert_eq!(
        months(&client, &carol, "2024-05", "2024-07").await,
        vec![
            month_row("2024-05", false, "waiting-period"),
            month_row("2024-06", false, "waiting-period"),
            month_row("2024-07", true, ""),
        ],
        "6 consecutive paid months, covered from the 7th"
    );
    assert_eq!(
        months(&client, &dave, "2024-01", "2024-07")
            .await
            .iter()
            .filter(|m| m.1)
            .count(),
        7,
        "the retiree is covered without paying the basic part"
    );
    // A flexible worker's own 6 % goes nowhere near the account (placeholder policy: 0).
    let bal = ok(&client, "account-balance", json!({"psn_no": carol})).await;
    assert_eq!(bal["balc"], "0.00");

    // July assessed and not paid: arrears after its deadline, benefits affected from 08-01.
    assess(&client, "2024-07").await;
    let mut tap = env.tap("medical.collection.arrears-detected").await;
    let r = cmd(&client, C, "detect-arrears", json!({"as_of": "2024-08-01"})).await;
    assert!(r.is_ok(), "{r:?}");
    let mut affected = None;
    while affected.is_none() {
        let e = tap.expect("medical.collection.arrears-detected").await;
        if e.body["payer_id"] == carol.as_str() {
            affected = Some(e.body["benefits_affected_from"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(affected.as_deref(), Some("2024-08-01"));
    let sql = format!("select count(*) from arrears where person_id = '{carol}'");
    testkit::wait_for("benefits to see the arrears", testkit::WAIT, || async {
        (count(&env, B, &sql).await == 1).then_some(())
    })
    .await;
    assert_eq!(
        months(&client, &carol, "2024-07", "2024-08").await,
        vec![
            month_row("2024-07", true, ""),
            month_row("2024-08", false, "arrears")
        ]
    );
    let info = ok(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "01", "mdtrt_cert_no": carol, "begntime": "2024-08-05T09:00:00+08:00"}),
    )
    .await;
    assert_eq!(info["insuinfo"][0]["not_eligible_reason"], "arrears");
    // The retiree's 7-yuan premium is unpaid too, but basic coverage stays.
    assert!(months(&client, &dave, "2024-08", "2024-08").await[0].1);

    // Back-payment on 08-20: coverage restored from the payment on (placeholder policy: not
    // retroactive), so 08-05 stays uncovered and 08-25 is covered.
    pay(&client, &env, &carol, "2024-07", "2024-08-20T10:00:00+08:00").await;
    let sql =
        format!("select count(*) from arrears where person_id = '{carol}' and restored_from = '2024-08-20'");
    testkit::wait_for("benefits to see the back-payment", testkit::WAIT, || async {
        (count(&env, B, &sql).await == 1).then_some(())
    })
    .await;
    for (day, eligible) in [("2024-08-05", false), ("2024-08-25", true), ("2024-09-01", true)] {
        let info = ok(
            &client,
            "person-info",
            json!({"mdtrt_cert_type": "01", "mdtrt_cert_no": carol, "begntime": format!("{day}T09:00:00+08:00")}),
        )
        .await;
        assert_eq!(info["insuinfo"][0]["eligible"], eligible, "{day}: {info}");
    }
    app.stop().await;
}

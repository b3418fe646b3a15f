//! Policy overrides (issue 10 §4): Jinan 2020, confirmed and suspected COVID-19 patients,
//! insured or not, paid in full by the fund and public finance with no reimbursement
//! procedure. The override is data (V7__policy_overrides.sql, dates placeholders); every
//! settlement says which rule decided it.
//!
//! Figures: the seeded level-3 outpatient policy (placeholders): the year's deductible
//! 700.00, pooled fund 50 %.

mod common;

use common::{B, H3, covered_staff_from, ok, split_of, upload};
use serde_json::{Value, json};
use testkit::{TestEnv, WAIT, credit_code, id_number, wait_for};

fn register(msgid: &str, who: (&str, &str), begn: &str, dise: &str, self_pay: bool) -> Value {
    json!({"msgid": msgid, "fixmedins_code": H3, "psn_no": who.0, "insutype": "310",
           "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "ipt_otp_no": format!("N-{msgid}"),
           "begntime": begn, "self_pay": self_pay, "dise_codg": dise})
}

fn fee(amount: &str) -> Value {
    json!({"feedetl_sn": "1", "med_list_codg": "XA01", "cnt": "1", "pric": amount,
           "det_item_fee_sumamt": amount, "fee_ocur_time": "2020-02-10 09:30:00"})
}

/// Registers, uploads one line of `amount` and settles; the settlement's result.
async fn care(
    client: &messaging::client::CommandClient,
    n: &str,
    who: (&str, &str),
    dise: &str,
    self_pay: bool,
    amount: &str,
) -> Value {
    let v = ok(
        client,
        "register-visit",
        register(&format!("OV-{n}"), who, "2020-02-10 09:00:00", dise, self_pay),
    )
    .await;
    let m = v["mdtrt_id"].as_str().unwrap().to_owned();
    upload(client, &m, who.0, vec![fee(amount)]).await;
    ok(
        client,
        "settle",
        json!({"msgid": format!("OS-{n}"), "fixmedins_code": H3, "mdtrt_id": m, "psn_no": who.0,
               "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "medfee_sumamt": amount,
               "acct_used_flag": "1", "insutype": "310"}),
    )
    .await
}

#[tokio::test]
async fn covid_patients_insured_or_not_pay_nothing_and_each_settlement_names_its_rule() {
    let env = TestEnv::new();
    // Jinan's own contribution rules (370100); covered from 2020-02 (January paid).
    let app = common::spawn_in(&env, "370100").await;
    let client = env.client().await;
    let employer = credit_code(961);
    let ids = [id_number(961)];
    let psns = covered_staff_from(
        &client,
        &env,
        &employer,
        &ids,
        "2020-01",
        "2020-01-15T10:00:00+08:00",
    )
    .await;
    let insured = (psns[0].as_str(), ids[0].as_str());
    // Enrolled from March: not covered on 02-10 (registered self-paid).
    let uninsured_id = id_number(962);
    let uninsured_psn = common::enroll(
        &client,
        &uninsured_id,
        "employee",
        Some(&employer),
        "2020-03",
        json!(["employee_medical"]),
    )
    .await;
    let sql = format!("select count(*) from persons where person_id = '{uninsured_psn}'");
    wait_for("benefits to know the person", WAIT, || async {
        (common::count(&env, B, &sql).await == 1).then_some(())
    })
    .await;
    let uninsured = (uninsured_psn.as_str(), uninsured_id.as_str());

    // Confirmed (U07.1), insured: the fund pays what the policy gives (deductible 700.00,
    // (1000 − 700) × 50 % = 150.00), public finance the other 850.00, the account nothing.
    let s = care(&client, "1", insured, "U07.1", false, "1000.00").await;
    assert_eq!(
        split_of(&s),
        [
            "1000.00", "1000.00", "700.00", "150.00", "0.00", "1000.00", "0.00", "0.00", "0.00"
        ],
        "{s}"
    );
    assert_eq!(s["oth_pay"], "850.00", "{s}");
    assert_eq!(s["rule"], "override:jinan-2020-covid-19", "{s}");
    assert_eq!(s["balc"], "100.00", "the account is not drawn on: {s}");

    // Suspected (U07.2), not insured on the day: public finance pays all of it.
    let s = care(&client, "2", uninsured, "U07.2", true, "500.00").await;
    assert_eq!(
        split_of(&s),
        [
            "500.00", "500.00", "0.00", "0.00", "0.00", "500.00", "0.00", "0.00", "0.00"
        ],
        "{s}"
    );
    assert_eq!(s["oth_pay"], "500.00", "{s}");
    assert_eq!(s["rule"], "override:jinan-2020-covid-19", "{s}");

    // Another diagnosis: the ordinary policy decides (the year's deductible is used up:
    // 200.00 × 50 % = 100.00, the account pays the other 100.00).
    let s = care(&client, "3", insured, "J18.9", false, "200.00").await;
    assert_eq!(
        split_of(&s),
        [
            "200.00", "200.00", "0.00", "100.00", "0.00", "100.00", "100.00", "0.00", "0.00"
        ],
        "{s}"
    );
    assert_eq!(s["oth_pay"], "0.00", "{s}");
    assert!(s["rule"].as_str().unwrap().starts_with("policy:"), "{s}");
    let s = care(&client, "4", uninsured, "J18.9", true, "500.00").await;
    assert_eq!(s["psn_cash_pay"], "500.00", "self-paid without the override: {s}");
    assert!(s["rule"].as_str().unwrap().starts_with("policy:"), "{s}");

    // The books: what public finance paid is inside the fund's total, and every
    // settlement stored its rule.
    let n = common::count(
        &env,
        B,
        "select count(*) from settlements where rule like 'override:%' and oth_pay > 0 \
         and fund_pay_sumamt = hifp_pay + hifob_pay + hifmi_pay + oth_pay",
    )
    .await;
    assert_eq!(n, 2);
    assert_eq!(
        common::count(&env, B, "select count(*) from settlements where rule = ''").await,
        0
    );
    app.stop().await;
}

//! Real-time settlement through the broker, for persons made eligible through the real
//! enrollment and collection path: every NHSA command's success and its error codes, the
//! split to the fen under the seed's (placeholder) policy figures, repeats by msgid,
//! cancel and reversal restoring the account and the annual deductible, family mutual aid,
//! and the day's reconciliation.

mod common;

use common::*;
use contracts::ErrorCode;
use messaging::client::CommandClient;
use serde_json::{Value, json};
use testkit::{TestEnv, credit_code, id_number};

fn settle_body(msgid: &str, inst: &str, mdtrt: &str, psn: &str, id: &str, medfee: &str, acct: &str) -> Value {
    json!({"msgid": msgid, "fixmedins_code": inst, "mdtrt_id": mdtrt, "psn_no": psn,
           "mdtrt_cert_type": "02", "mdtrt_cert_no": id, "medfee_sumamt": medfee,
           "acct_used_flag": acct, "insutype": "310"})
}

async fn balance(client: &CommandClient, psn: &str) -> String {
    ok(client, "account-balance", json!({"psn_no": psn})).await["balc"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn outpatient_and_inpatient_settlement_with_repeats_cancel_reversal_mutual_aid_and_reconciliation() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.benefits.*").await;
    let employer = credit_code(921);
    let (alice_id, bob_id) = (id_number(921), id_number(922));
    let staff = covered_staff(&client, &env, &employer, &[alice_id.clone(), bob_id.clone()]).await;
    let (alice, bob) = (staff[0].clone(), staff[1].clone());
    let carol_id = id_number(923);
    let carol = enroll(
        &client,
        &carol_id,
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
            &format!("select count(*) from persons where person_id = '{carol}'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;

    // 1101 errors.
    let r = code(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": "420102199001011235"}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidIdNumber), Some("mdtrt_cert_no"))
    );
    let r = code(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": id_number(999)}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::NotFound), Some("mdtrt_cert_no"))
    );
    let r = code(
        &client,
        "person-info",
        json!({"mdtrt_cert_type": "09", "mdtrt_cert_no": alice_id}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("mdtrt_cert_type"))
    );
    let r = code(&client, "person-info", json!({"mdtrt_cert_no": alice_id})).await;
    assert_eq!(r.0, Some(ErrorCode::MalformedMessage));
    let r = code(&client, "no-such-thing", json!({})).await;
    assert_eq!(r.0, Some(ErrorCode::UnknownCommand));

    // 2201, repeat by msgid → the same visit.
    let v1 = visit(
        &client,
        "register-visit",
        "M1",
        H3,
        (&alice, &alice_id),
        "2024-05-10T09:00:00+08:00",
        false,
    )
    .await;
    let m1 = v1["mdtrt_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (v1["status"].as_str(), v1["self_pay"].as_bool()),
        (Some("registered"), Some(false))
    );
    let again = visit(
        &client,
        "register-visit",
        "M1",
        H3,
        (&alice, &alice_id),
        "2024-05-10T09:00:00+08:00",
        false,
    )
    .await;
    assert_eq!(again["mdtrt_id"], m1.as_str());
    let r = code(
        &client,
        "register-visit",
        json!({"msgid": "M-x", "fixmedins_code": "H000", "psn_no": alice, "insutype": "310", "mdtrt_cert_type": "02",
               "mdtrt_cert_no": alice_id, "ipt_otp_no": "x", "begntime": "2024-05-10T09:00:00+08:00"}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::NotFound), Some("fixmedins_code"))
    );
    let r = code(
        &client,
        "register-visit",
        json!({"msgid": "M-y", "fixmedins_code": H3, "psn_no": alice, "insutype": "310", "mdtrt_cert_type": "02",
               "mdtrt_cert_no": bob_id, "ipt_otp_no": "x", "begntime": "2024-05-10T09:00:00+08:00"}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("mdtrt_cert_no"))
    );

    // Not eligible (a first-time flexible worker with nothing paid): NOT_ELIGIBLE with the
    // reason and the month, or registered self-paid on request.
    let r = code(
        &client,
        "register-visit",
        json!({"msgid": "M-c", "fixmedins_code": H2, "psn_no": carol, "insutype": "310", "mdtrt_cert_type": "02",
               "mdtrt_cert_no": carol_id, "ipt_otp_no": "x", "begntime": "2024-05-10T09:00:00+08:00"}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::NotEligible), Some("psn_no"))
    );
    assert!(
        r.2.contains("2024-05") && r.2.contains("waiting-period") && r.2.contains("310"),
        "{}",
        r.2
    );
    let vc = visit(
        &client,
        "register-visit",
        "M-c",
        H2,
        (&carol, &carol_id),
        "2024-05-10T09:00:00+08:00",
        true,
    )
    .await;
    assert_eq!(vc["self_pay"], true);
    let mc = vc["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &mc,
        &carol,
        vec![fee("1", "XA01", "1", "100.00", "100.00")],
    )
    .await;
    let sc = ok(
        &client,
        "settle",
        settle_body("S-c", H2, &mc, &carol, &carol_id, "100.00", "1"),
    )
    .await;
    assert_eq!(
        split_of(&sc),
        [
            "100.00", "100.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "100.00"
        ],
        "self-paid: the fund pays nothing"
    );

    // 2204: the catalogue splits each line; errors on a wrong amount or a changed line.
    let up = upload(
        &client,
        &m1,
        &alice,
        vec![
            fee("1", "XA01", "2", "300.00", "600.00"),
            fee("2", "XB01", "1", "500.00", "500.00"),
            fee("3", "XC01", "1", "80.00", "80.00"),
        ],
    )
    .await;
    let lines = up["result"].as_array().unwrap();
    assert_eq!(
        (
            lines[1]["preselfpay_amt"].as_str(),
            lines[1]["inscp_scp_amt"].as_str()
        ),
        (Some("50.00"), Some("450.00"))
    );
    assert_eq!(
        (
            lines[2]["fulamt_ownpay_amt"].as_str(),
            lines[2]["chrgitm_lv"].as_str()
        ),
        (Some("80.00"), Some("3"))
    );
    let r = code(
        &client,
        "upload-fees",
        json!({"mdtrt_id": m1, "psn_no": alice, "feedetail": [fee("4", "XA01", "3", "1.10", "3.31")]}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (
            Some(ErrorCode::InvalidField),
            Some("feedetail[0].det_item_fee_sumamt")
        )
    );
    let r = code(
        &client,
        "upload-fees",
        json!({"mdtrt_id": m1, "psn_no": alice, "feedetail": [fee("1", "XA01", "3", "300.00", "900.00")]}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("feedetail[0].feedetl_sn"))
    );
    // A line uploaded and cancelled (2205) does not count.
    upload(
        &client,
        &m1,
        &alice,
        vec![fee("9", "F002", "1", "55.55", "55.55")],
    )
    .await;
    let cf = ok(
        &client,
        "cancel-fees",
        json!({"mdtrt_id": m1, "psn_no": alice, "feedetl_sn": ["9"]}),
    )
    .await;
    assert_eq!(cf["cancelled"], json!(["9"]));
    let r = code(
        &client,
        "cancel-fees",
        json!({"mdtrt_id": m1, "psn_no": alice, "feedetl_sn": ["9"]}),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::NotFound));

    // 2206: the whole computation, nothing booked. Level 3 outpatient (placeholders): 700.00
    // yearly deductible, then 50 %; the account pays the person's share except 全自费.
    // 1180.00 = fund 175.00 + account 100.00 + cash 905.00.
    let want1 = [
        "1180.00", "1050.00", "700.00", "175.00", "0.00", "175.00", "100.00", "0.00", "905.00",
    ];
    let pre = ok(
        &client,
        "pre-settle",
        settle_body("P1", H3, &m1, &alice, &alice_id, "1180.00", "1"),
    )
    .await;
    assert_eq!(split_of(&pre), want1);
    assert_eq!(
        (pre["setl_id"].as_str(), pre["balc"].as_str()),
        (None, Some("0.00"))
    );
    assert_eq!(
        balance(&client, &alice).await,
        "100.00",
        "a pre-settlement books nothing"
    );
    let r = code(
        &client,
        "pre-settle",
        settle_body("P1", H3, &m1, &alice, &alice_id, "1180.01", "1"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("medfee_sumamt"))
    );
    let r = code(
        &client,
        "pre-settle",
        settle_body("P1", H3, &m1, &alice, &alice_id, "1180.00", "2"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("acct_used_flag"))
    );
    let r = code(&client, "pre-settle", json!({"msgid": "P1", "fixmedins_code": H3, "mdtrt_id": m1, "psn_no": alice,
        "mdtrt_cert_type": "02", "mdtrt_cert_no": alice_id, "medfee_sumamt": "1180.00", "acct_used_flag": "1", "insutype": "999"})).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("insutype"))
    );

    // 2207, and a repeat of its msgid: the same setl_id, nothing booked twice.
    let s1 = ok(
        &client,
        "settle",
        settle_body("S1", H3, &m1, &alice, &alice_id, "1180.00", "1"),
    )
    .await;
    assert_eq!(split_of(&s1), want1);
    let setl1 = s1["setl_id"].as_str().unwrap().to_owned();
    let completed = event_where(&mut tap, "medical.benefits.settlement-completed", |b| {
        b["setl_id"] == setl1.as_str()
    })
    .await;
    assert_eq!(
        (
            completed["setl_id"].as_str(),
            completed["fund_pay_sumamt"].as_str(),
            completed["psn_cash_pay"].as_str()
        ),
        (Some(setl1.as_str()), Some("175.00"), Some("905.00"))
    );
    let debited = event_where(&mut tap, "medical.benefits.account-debited", |b| {
        b["setl_id"] == setl1.as_str()
    })
    .await;
    assert_eq!(
        (
            debited["psn_no"].as_str(),
            debited["amount"].as_str(),
            debited["balc"].as_str()
        ),
        (Some(alice.as_str()), Some("100.00"), Some("0.00"))
    );
    let rep = ok(
        &client,
        "settle",
        settle_body("S1", H3, &m1, &alice, &alice_id, "1180.00", "1"),
    )
    .await;
    assert_eq!(rep, s1, "a repeat returns the same settlement");
    assert_eq!(balance(&client, &alice).await, "0.00");
    let r = code(
        &client,
        "settle",
        settle_body("S1-other", H3, &m1, &alice, &alice_id, "1180.00", "1"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("mdtrt_id")),
        "one settlement per visit"
    );
    let r = code(&client, "cancel-visit", json!({"mdtrt_id": m1, "psn_no": alice})).await;
    assert_eq!(r.0, Some(ErrorCode::Conflict));

    // 2208: cancel restores the account and the year's deductible exactly; a resettlement
    // computes the same split.
    let c1 = ok(
        &client,
        "cancel-settlement",
        json!({"msgid": "C1", "setl_id": setl1, "mdtrt_id": m1, "psn_no": alice}),
    )
    .await;
    assert_eq!(
        (c1["status"].as_str(), c1["balc"].as_str()),
        (Some("cancelled"), Some("100.00"))
    );
    let cancelled = event_where(&mut tap, "medical.benefits.settlement-cancelled", |b| {
        b["setl_id"] == setl1.as_str()
    })
    .await;
    assert_eq!(
        (cancelled["how"].as_str(), cancelled["acct_pay"].as_str()),
        (Some("cancel"), Some("100.00"))
    );
    let r = code(
        &client,
        "cancel-settlement",
        json!({"msgid": "C1-b", "setl_id": setl1, "mdtrt_id": m1, "psn_no": alice}),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::Conflict));
    let s2 = ok(
        &client,
        "settle",
        settle_body("S2", H3, &m1, &alice, &alice_id, "1180.00", "1"),
    )
    .await;
    assert_eq!(split_of(&s2), want1, "the cancel restored deductible and account");
    let setl2 = s2["setl_id"].as_str().unwrap().to_owned();
    assert_ne!(setl2, setl1);
    let today = s2["setl_time"].as_str().unwrap()[..10].to_owned();

    // A second outpatient visit the same year: the deductible is used up; no account.
    let v2 = visit(
        &client,
        "register-visit",
        "M2",
        H3,
        (&alice, &alice_id),
        "2024-06-01T09:00:00+08:00",
        false,
    )
    .await;
    let m2 = v2["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &m2,
        &alice,
        vec![fee("1", "XA01", "1", "1000.00", "1000.00")],
    )
    .await;
    let want2 = [
        "1000.00", "1000.00", "0.00", "500.00", "0.00", "500.00", "0.00", "0.00", "500.00",
    ];
    let s3 = ok(
        &client,
        "settle",
        settle_body("S3", H3, &m2, &alice, &alice_id, "1000.00", "0"),
    )
    .await;
    assert_eq!(split_of(&s3), want2);
    // 2601: the institution timed out on S3 and reverses it by its message id.
    let rv = ok(
        &client,
        "reverse",
        json!({"msgid": "R1", "psn_no": alice, "oinfno": "2207", "omsgid": "S3"}),
    )
    .await;
    assert_eq!(
        (rv["reversed"].as_bool(), rv["setl_id"].as_str()),
        (Some(true), s3["setl_id"].as_str())
    );
    let rv2 = ok(
        &client,
        "reverse",
        json!({"msgid": "R1", "psn_no": alice, "oinfno": "2207", "omsgid": "S3"}),
    )
    .await;
    assert_eq!(rv2, rv, "a repeated reversal changes nothing");
    // A reversal of something never booked: refused when the original arrives late.
    let rv = ok(
        &client,
        "reverse",
        json!({"msgid": "R2", "psn_no": alice, "oinfno": "2207", "omsgid": "S-lost"}),
    )
    .await;
    assert_eq!(rv["reversed"], false);
    let r = code(
        &client,
        "settle",
        settle_body("S-lost", H3, &m2, &alice, &alice_id, "1000.00", "0"),
    )
    .await;
    assert_eq!((r.0, r.1.as_deref()), (Some(ErrorCode::Conflict), Some("msgid")));
    let s3b = ok(
        &client,
        "settle",
        settle_body("S3b", H3, &m2, &alice, &alice_id, "1000.00", "0"),
    )
    .await;
    assert_eq!(split_of(&s3b), want2);

    // 2401 / 2402 / 2304: inpatient at a level-2 hospital (placeholders: 400.00 per
    // admission, 88 %); a bed day above its 50.00 limit is self-paid above it.
    let adm = visit(
        &client,
        "admit",
        "A1",
        H2,
        (&alice, &alice_id),
        "2024-07-01T08:00:00+08:00",
        false,
    )
    .await;
    assert!(
        adm["note"]
            .as_str()
            .unwrap()
            .contains("no social security card information"),
        "{adm}"
    );
    assert_eq!(adm["status"], "admitted");
    let ma = adm["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &ma,
        &alice,
        vec![
            fee("1", "F001", "4", "80.00", "320.00"),
            fee("2", "XA01", "1", "10000.00", "10000.00"),
        ],
    )
    .await;
    let r = code(
        &client,
        "settle",
        settle_body("SA1", H2, &ma, &alice, &alice_id, "10320.00", "1"),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "discharge first: {}", r.2);
    let d = ok(
        &client,
        "discharge",
        json!({"mdtrt_id": ma, "psn_no": alice, "endtime": "2024-07-05T10:00:00+08:00"}),
    )
    .await;
    assert_eq!(d["status"], "discharged");
    let sa = ok(
        &client,
        "settle",
        settle_body("SA1", H2, &ma, &alice, &alice_id, "10320.00", "1"),
    )
    .await;
    assert_eq!(
        split_of(&sa),
        [
            "10320.00", "10200.00", "400.00", "8624.00", "0.00", "8624.00", "0.00", "0.00", "1696.00"
        ]
    );
    assert_eq!(sa["overlmt_selfpay"], "120.00");

    // Family mutual aid: Bob lets Alice draw on his account once hers is empty.
    let r = code(
        &client,
        "authorise-mutual-aid",
        json!({"psn_no": bob, "relative_psn_no": bob}),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::InvalidField));
    ok(
        &client,
        "authorise-mutual-aid",
        json!({"psn_no": bob, "relative_psn_no": alice, "relation": "spouse"}),
    )
    .await;
    let v4 = visit(
        &client,
        "register-visit",
        "M4",
        H3,
        (&alice, &alice_id),
        "2024-08-01T09:00:00+08:00",
        false,
    )
    .await;
    let m4 = v4["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &m4,
        &alice,
        vec![fee("1", "XA01", "1", "240.00", "240.00")],
    )
    .await;
    let s4 = ok(
        &client,
        "settle",
        settle_body("S4", H3, &m4, &alice, &alice_id, "240.00", "1"),
    )
    .await;
    assert_eq!(
        split_of(&s4),
        [
            "240.00", "240.00", "0.00", "120.00", "0.00", "120.00", "0.00", "100.00", "20.00"
        ]
    );
    assert_eq!(balance(&client, &bob).await, "0.00");
    let aid = event_where(&mut tap, "medical.benefits.account-debited", |b| {
        b["kind"] == "mutual-aid"
    })
    .await;
    assert_eq!(
        (
            aid["psn_no"].as_str(),
            aid["beneficiary_psn_no"].as_str(),
            aid["amount"].as_str()
        ),
        (Some(bob.as_str()), Some(alice.as_str()), Some("100.00"))
    );
    ok(
        &client,
        "cancel-settlement",
        json!({"msgid": "C4", "setl_id": s4["setl_id"], "mdtrt_id": m4, "psn_no": alice}),
    )
    .await;
    assert_eq!(
        balance(&client, &bob).await,
        "100.00",
        "the cancel gives the relative's account back"
    );
    ok(
        &client,
        "revoke-mutual-aid",
        json!({"psn_no": bob, "relative_psn_no": alice}),
    )
    .await;
    let s4b = ok(
        &client,
        "settle",
        settle_body("S4b", H3, &m4, &alice, &alice_id, "240.00", "1"),
    )
    .await;
    assert_eq!(s4b["acct_mulaid_pay"], "0.00", "revoked");
    assert_eq!(s4b["psn_cash_pay"], "120.00");
    ok(
        &client,
        "cancel-settlement",
        json!({"msgid": "C4b", "setl_id": s4b["setl_id"], "mdtrt_id": m4, "psn_no": alice}),
    )
    .await;
    let st = ok(&client, "account-statement", json!({"psn_no": bob})).await;
    let kinds: Vec<&str> = st["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["credit", "mutual-aid", "reversal"]);

    // 3201: H3 310 today stands at S2 + S3b.
    let totals = |medfee: &str, fund: &str, acct: &str, n: i64| {
        json!({"fixmedins_code": H3, "insutype": "310", "stmt_begndate": today, "stmt_enddate": today,
               "medfee_sumamt": medfee, "fund_pay_sumamt": fund, "acct_pay": acct, "fixmedins_setl_cnt": n})
    };
    let t = ok(
        &client,
        "reconcile-totals",
        totals("2180.00", "675.00", "100.00", 2),
    )
    .await;
    assert_eq!(
        (t["stmt_rslt"].as_str(), t["differences"].as_array().map(Vec::len)),
        (Some("0"), Some(0)),
        "{t}"
    );
    let t = ok(
        &client,
        "reconcile-totals",
        totals("2180.00", "675.01", "100.00", 3),
    )
    .await;
    assert_eq!(t["stmt_rslt"], "1");
    assert_eq!(
        t["differences"],
        json!([{"field": "fund_pay_sumamt", "theirs": "675.01", "ours": "675.00"},
               {"field": "fixmedins_setl_cnt", "theirs": "3", "ours": "2"}])
    );
    // 3202: each settlement of the day, cancelled ones flagged.
    let line = |s: &Value, flag: &str| {
        json!({"setl_id": s["setl_id"], "medfee_sumamt": s["medfee_sumamt"], "fund_pay_sumamt": s["fund_pay_sumamt"],
               "acct_pay": s["acct_pay"], "refd_setl_flag": flag})
    };
    let all = vec![
        line(&s1, "1"),
        line(&s2, "0"),
        line(&s3, "1"),
        line(&s3b, "0"),
        line(&s4, "1"),
        line(&s4b, "1"),
    ];
    let dt = ok(
        &client,
        "reconcile-details",
        json!({"fixmedins_code": H3, "insutype": "310", "stmt_begndate": today, "stmt_enddate": today, "details": all}),
    )
    .await;
    assert_eq!(
        (dt["stmt_rslt"].as_str(), dt["checked"].as_i64()),
        (Some("0"), Some(6)),
        "{dt}"
    );
    let mut wrong = all.clone();
    wrong[1]["fund_pay_sumamt"] = json!("176.00");
    wrong.remove(5);
    wrong.push(json!({"setl_id": "nope", "medfee_sumamt": "1", "fund_pay_sumamt": "0", "acct_pay": "0", "refd_setl_flag": "0"}));
    let dt = ok(
        &client,
        "reconcile-details",
        json!({"fixmedins_code": H3, "insutype": "310", "stmt_begndate": today, "stmt_enddate": today, "details": wrong}),
    )
    .await;
    assert_eq!(dt["stmt_rslt"], "1");
    let diffs: Vec<(String, String)> = dt["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["setl_id"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        diffs.contains(&(setl2.clone(), "amounts-differ".into())),
        "{diffs:?}"
    );
    assert!(
        diffs.contains(&("nope".into(), "missing-here".into())),
        "{diffs:?}"
    );
    assert!(
        diffs.contains(&(
            s4b["setl_id"].as_str().unwrap().to_owned(),
            "missing-there".into()
        )),
        "{diffs:?}"
    );
    assert_eq!(diffs.len(), 3);

    // Across the service: what settlements say the accounts paid is what the ledger debited.
    let svc = ok(&client, "reconcile-service", json!({})).await;
    assert_eq!(svc["balanced"], true, "{svc}");
    let t310 = &svc["per_insutype"][0];
    assert_eq!(
        (
            t310["settlements"].as_i64(),
            t310["acct_paid"].as_str(),
            t310["ledger_debits"].as_str()
        ),
        (Some(4), Some("100.00"), Some("100.00")),
        "S2, S3b, SA1 and the self-paid S-c stand: {svc}"
    );
    app.stop().await;
}

fn policy(from: &str, cap: &str, ratios: Vec<Value>) -> Value {
    json!({"insutype": "310", "effective_from": from, "annual_cap": cap, "outpatient_deductible": "0.00",
           "large_ratio": "0.90", "large_cap": "1000.00", "account_allowed": false,
           "arrears_restore_retroactive": false, "source": "test", "reason": "test change", "ratios": ratios})
}

fn ratios(outpatient_l3: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for kind in ["outpatient", "inpatient"] {
        for lv in ["1", "2", "3"] {
            let r = if kind == "outpatient" && lv == "3" {
                outpatient_l3
            } else {
                "0.80"
            };
            out.push(json!({"kind": kind, "hosp_lv": lv, "deductible": "100.00", "ratio": r}));
        }
    }
    out
}

#[tokio::test]
async fn a_policy_change_applies_from_its_date_and_the_annual_cap_counts_what_stands() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let id = id_number(941);
    let psn = covered_staff(&client, &env, &credit_code(941), std::slice::from_ref(&id)).await[0].clone();

    let r = code(
        &client,
        "set-benefit-policy",
        policy("2024-09-01", "300.00", ratios("0.60")[..5].to_vec()),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("ratios"))
    );
    let r = code(
        &client,
        "set-benefit-policy",
        policy("2024-09-01", "300.00", ratios("1.5")),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::InvalidField));
    // From September: no deductible, 60 % at level 3, a 300.00 cap, no account.
    let p1 = ok(
        &client,
        "set-benefit-policy",
        policy("2024-09-01", "300.00", ratios("0.55")),
    )
    .await;
    assert!(
        p1["closed"].is_i64(),
        "the seed's open-ended rule is closed on 08-31: {p1}"
    );
    let p2 = ok(
        &client,
        "set-benefit-policy",
        policy("2024-09-01", "300.00", ratios("0.60")),
    )
    .await;
    assert_eq!(p2["replaced"], p1["policy_id"], "the same start replaces: {p2}");

    let who = (psn.as_str(), id.as_str());
    let aug = visit(
        &client,
        "register-visit",
        "P-aug",
        H3,
        who,
        "2024-08-20T09:00:00+08:00",
        false,
    )
    .await;
    let aug = aug["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &aug,
        &psn,
        vec![fee("1", "XA01", "1", "1000.00", "1000.00")],
    )
    .await;
    let s_aug = ok(
        &client,
        "settle",
        settle_body("PS-aug", H3, &aug, &psn, &id, "1000.00", "1"),
    )
    .await;
    assert_eq!(
        split_of(&s_aug),
        [
            "1000.00", "1000.00", "700.00", "150.00", "0.00", "150.00", "100.00", "0.00", "750.00"
        ],
        "August: the seed's rule"
    );
    let sep = visit(
        &client,
        "register-visit",
        "P-sep",
        H3,
        who,
        "2024-09-10T09:00:00+08:00",
        false,
    )
    .await;
    let sep = sep["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &sep,
        &psn,
        vec![fee("1", "XA01", "1", "1000.00", "1000.00")],
    )
    .await;
    // 60 % of 1000 = 600, but August's 150.00 leaves 150.00 of the 300.00 cap; no
    // large-amount coverage (not enrolled in 330); the account is not allowed.
    let pre = ok(
        &client,
        "pre-settle",
        settle_body("PP-sep", H3, &sep, &psn, &id, "1000.00", "1"),
    )
    .await;
    assert_eq!(
        split_of(&pre),
        [
            "1000.00", "1000.00", "0.00", "150.00", "0.00", "150.00", "0.00", "0.00", "850.00"
        ]
    );
    assert_eq!(pre["pool_prop_selfpay"], "0.6");
    // Cancelling August gives its 150.00 back to the year's cap.
    ok(
        &client,
        "cancel-settlement",
        json!({"msgid": "PC-aug", "setl_id": s_aug["setl_id"], "mdtrt_id": aug, "psn_no": psn}),
    )
    .await;
    let pre = ok(
        &client,
        "pre-settle",
        settle_body("PP-sep2", H3, &sep, &psn, &id, "1000.00", "1"),
    )
    .await;
    assert_eq!(
        split_of(&pre),
        [
            "1000.00", "1000.00", "0.00", "300.00", "0.00", "300.00", "0.00", "0.00", "700.00"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retiree_above_the_annual_cap_gets_the_large_amount_fund_once_the_premium_is_paid() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let id = id_number(951);
    let dave = enroll(
        &client,
        &id,
        "retiree",
        None,
        "2024-01",
        json!(["employee_medical", "large_amount_medical"]),
    )
    .await;
    collection_sees(&env, 2).await;
    let who = (dave.as_str(), id.as_str());
    // Before the 7-yuan large-amount premium is paid: the pooled fund stops at its cap.
    let stay = |msgid: &str| {
        let msgid = msgid.to_owned();
        let client = &client;
        async move {
            let adm = visit(
                client,
                "admit",
                &msgid,
                H3,
                who,
                "2024-03-01T08:00:00+08:00",
                false,
            )
            .await;
            let m = adm["mdtrt_id"].as_str().unwrap().to_owned();
            upload(
                client,
                &m,
                who.0,
                vec![fee("1", "XA01", "1", "200000.00", "200000.00")],
            )
            .await;
            ok(
                client,
                "discharge",
                json!({"mdtrt_id": m, "psn_no": who.0, "endtime": "2024-03-20T10:00:00+08:00"}),
            )
            .await;
            m
        }
    };
    let m1 = stay("D-1").await;
    let pre = ok(
        &client,
        "pre-settle",
        settle_body("DP-1", H3, &m1, &dave, &id, "200000.00", "0"),
    )
    .await;
    // Level 3 inpatient (placeholders): 800.00 deductible, 85 %, cap 150000.00.
    assert_eq!(
        split_of(&pre),
        [
            "200000.00",
            "200000.00",
            "800.00",
            "150000.00",
            "0.00",
            "150000.00",
            "0.00",
            "0.00",
            "50000.00"
        ]
    );
    assess(&client, "2024-01").await;
    pay(&client, &env, &dave, "2024-01", "2024-01-10T10:00:00+08:00").await;
    let sql = format!(
        "select count(*) from paid_months where person_id = '{dave}' and insurance_type = 'large_amount_medical'"
    );
    testkit::wait_for("benefits to see the premium paid", testkit::WAIT, || async {
        (count(&env, B, &sql).await == 1).then_some(())
    })
    .await;
    // Now covered by 330 from February: 150000 / 0.85 = 176470.59 of the base was the
    // pooled fund's; the other 22729.41 goes to the large-amount fund at 90 % = 20456.47.
    let s = ok(
        &client,
        "settle",
        settle_body("DS-1", H3, &m1, &dave, &id, "200000.00", "0"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "200000.00",
            "200000.00",
            "800.00",
            "150000.00",
            "20456.47",
            "170456.47",
            "0.00",
            "0.00",
            "29543.53"
        ]
    );
    // A second stay the same year: the pooled cap is used up, the large-amount fund pays.
    let m2 = stay("D-2").await;
    let s2 = ok(
        &client,
        "pre-settle",
        settle_body("DP-2", H3, &m2, &dave, &id, "200000.00", "0"),
    )
    .await;
    assert_eq!(
        split_of(&s2),
        [
            "200000.00",
            "200000.00",
            "800.00",
            "0.00",
            "179280.00",
            "179280.00",
            "0.00",
            "0.00",
            "20720.00"
        ],
        "199200 × 90 % = 179280.00, within the 400000.00 large-amount cap"
    );
    app.stop().await;
}

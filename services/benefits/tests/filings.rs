//! Filings 备案 that change how settlements and claims settle (issue 10 §1), through the
//! broker and the database: cross-region care 异地就医, outpatient chronic and special disease
//! 门诊慢特病 with full review and the simple procedure, special drugs 特治特药, and late filing
//! 补登记 after the Wuhan 2021 settlement stop.
//!
//! The person is made eligible through the real enrollment → collection path, then benefits
//! runs on a drill clock set to the day of the story (a filing starts on the day it is made).
//!
//! Figures (V1 and V9 seeds, placeholders where the notices give none), 310:
//! - outpatient: the year's deductible 700.00; pooled fund 50 % at level 3, 60 % at level 2;
//! - inpatient level 3: deductible 800.00 per admission, 85 %;
//! - care elsewhere with a filing: the same ratio (Jinan 2020); unfiled: real-time settlement
//!   refused, a claim in cash at the ratio less 0.10;
//! - chronic disease: own yearly deductible 100.00, 80 %, up to 90 days of drugs per visit
//!   (XD01: 30 days a box), on the social security card only;
//! - special drug: 70 % on the filed drug's lines at the filed institution.

mod common;

use common::benefits_at;

use common::{B, H2, H3, code, covered_staff_from, event_where, ok, split_of, upload};
use contracts::freeze::{ControlMessage, Timetable};
use contracts::{ErrorCode, Line, ReplyStatus};
use messaging::client::CommandClient;
use serde_json::{Value, json};
use testkit::services::{broadcast_control, wait_control_consumed};
use testkit::{TestEnv, WAIT, credit_code, id_number, send, wait_for};

const WUHAN: &str = include_str!("../../../cutovers/wuhan-2021.yaml");
/// Seeded placeholder institutions of Jinan (370100), levels 3 and 2.
const JN3: &str = "H37010000001";
const JN2: &str = "H37010000002";

/// A person covered by 310 from the month after `month` (paid at `paid_at`): (psn_no, ID).
async fn covered(
    env: &TestEnv,
    client: &CommandClient,
    n: u32,
    month: &str,
    paid_at: &str,
) -> (String, String) {
    let setup = common::spawn(env).await;
    let employer = credit_code(n);
    let ids = [id_number(n)];
    let psns = covered_staff_from(client, env, &employer, &ids, month, paid_at).await;
    setup.stop().await;
    (psns[0].clone(), ids[0].clone())
}

fn visit_body(msgid: &str, inst: &str, who: (&str, &str), begn: &str, dise: Option<&str>) -> Value {
    let mut b = json!({"msgid": msgid, "fixmedins_code": inst, "psn_no": who.0, "insutype": "310",
           "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "ipt_otp_no": format!("N-{msgid}"),
           "begntime": begn});
    if let Some(d) = dise {
        b["dise_codg"] = json!(d);
    }
    b
}

fn line(sn: &str, code: &str, cnt: &str, pric: &str, amount: &str, at: &str) -> Value {
    json!({"feedetl_sn": sn, "med_list_codg": code, "cnt": cnt, "pric": pric,
           "det_item_fee_sumamt": amount, "fee_ocur_time": at})
}

fn settle_body(msgid: &str, inst: &str, mdtrt: &str, who: (&str, &str), cert: &str, medfee: &str) -> Value {
    json!({"msgid": msgid, "fixmedins_code": inst, "mdtrt_id": mdtrt, "psn_no": who.0,
           "mdtrt_cert_type": cert, "mdtrt_cert_no": who.1, "medfee_sumamt": medfee,
           "acct_used_flag": "0", "insutype": "310"})
}

/// Registers an outpatient visit and uploads its lines; the mdtrt_id.
async fn outpatient(
    client: &CommandClient,
    msgid: &str,
    inst: &str,
    who: (&str, &str),
    begn: &str,
    dise: Option<&str>,
    lines: Vec<Value>,
) -> String {
    let v = ok(client, "register-visit", visit_body(msgid, inst, who, begn, dise)).await;
    let m = v["mdtrt_id"].as_str().unwrap().to_owned();
    upload(client, &m, who.0, lines).await;
    m
}

fn claim_body(who: (&str, &str), inst: &str, begn: &str, amount: &str) -> Value {
    json!({"psn_no": who.0, "insutype": "310", "kind": "outpatient", "fixmedins_code": inst,
           "begntime": begn, "reason": "other",
           "documents": [{"kind": "invoice", "uri": "docs://filings/invoice.jpg"}],
           "feedetail": [line("1", "XA01", "1", amount, amount, begn)], "medfee_sumamt": amount})
}

async fn settlements(env: &TestEnv) -> i64 {
    common::count(env, B, "select count(*) from settlements").await
}

async fn filings(env: &TestEnv) -> i64 {
    common::count(env, B, "select count(*) from filings").await
}

const DAY: &str = "2024-05-20 09:30:00";

#[tokio::test]
async fn cross_region_care_settles_with_a_filing_and_is_refused_or_claimed_at_a_reduced_ratio_without() {
    let env = TestEnv::new();
    let client = env.client().await;
    let (psn, id) = covered(&env, &client, 971, "2024-03", "2024-03-20T10:00:00+08:00").await;
    let who = (psn.as_str(), id.as_str());
    let app = benefits_at(&env, "2024-05-20T10:00:00+08:00").await;
    let mut tap = env.tap("medical.benefits.*").await;

    // Unfiled care at a Jinan institution: real-time settlement refused, naming the filing.
    let m = outpatient(
        &client,
        "CR-V1",
        JN3,
        who,
        DAY,
        None,
        vec![line("1", "XA01", "1", "1000.00", "1000.00", DAY)],
    )
    .await;
    let r = code(
        &client,
        "settle",
        settle_body("CR-S1", JN3, &m, who, "02", "1000.00"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::NotEligible), Some("fixmedins_code")),
        "{}",
        r.2
    );
    assert!(
        r.2.contains("file-cross-region") && r.2.contains("370100") && r.2.contains("submit-claim"),
        "{}",
        r.2
    );
    assert_eq!(settlements(&env).await, 0, "a refusal books nothing");

    // Paid in cash the day before, claimed at the agency: the ordinary ratio less 0.10:
    // (1000 − 700) × 40 % = 120.00.
    let c = ok(
        &client,
        "submit-claim",
        claim_body(who, JN3, "2024-05-19 09:00:00", "1000.00"),
    )
    .await;
    assert_eq!(
        (&c["act_pay_dedc"], &c["hifp_pay"], &c["unfiled_elsewhere"]),
        (&json!("700.00"), &json!("120.00"), &json!(true)),
        "{c}"
    );

    // Bad input: a specific error each, nothing recorded.
    let filing = |t: &str, region: &str, from: &str| json!({"psn_no": psn, "filing_type": t, "region": region, "valid_from": from});
    for (body, want, field) in [
        (
            filing("holiday", "370100", "2024-05-20"),
            ErrorCode::InvalidField,
            "filing_type",
        ),
        (
            filing("work-posting", "3701", "2024-05-20"),
            ErrorCode::InvalidField,
            "region",
        ),
        (
            filing("work-posting", "420100", "2024-05-20"),
            ErrorCode::InvalidField,
            "region",
        ),
        (
            filing("work-posting", "370100", "2024-05-32"),
            ErrorCode::InvalidField,
            "valid_from",
        ),
        (
            json!({"psn_no": psn, "filing_type": "work-posting", "region": "370100",
                   "valid_from": "2024-05-20", "valid_to": "2024-05-01"}),
            ErrorCode::InvalidField,
            "valid_to",
        ),
        (
            filing("referral", "370100", "2024-05-20"),
            ErrorCode::InvalidField,
            "referred_by",
        ),
        (
            json!({"psn_no": psn, "filing_type": "work-posting", "region": "370100",
                   "valid_from": "2024-05-20", "referred_by": H3}),
            ErrorCode::InvalidField,
            "referred_by",
        ),
        // Not made retroactively outside a settlement stop: the reply says to claim.
        (
            filing("work-posting", "370100", "2024-05-01"),
            ErrorCode::Conflict,
            "valid_from",
        ),
        (
            json!({"psn_no": uuid::Uuid::now_v7().to_string(), "filing_type": "work-posting",
                   "region": "370100", "valid_from": "2024-05-20"}),
            ErrorCode::NotFound,
            "psn_no",
        ),
    ] {
        let r = code(&client, "file-cross-region", body.clone()).await;
        assert_eq!(
            (r.0, r.1.as_deref()),
            (Some(want), Some(field)),
            "{body}: {}",
            r.2
        );
        if field == "valid_from" && want == ErrorCode::Conflict {
            assert!(r.2.contains("submit-claim"), "{}", r.2);
        }
    }
    assert_eq!(filings(&env).await, 0, "refused filings are not stored");

    // A work posting in Jinan from today: approved at once, two events.
    let f = ok(
        &client,
        "file-cross-region",
        json!({"psn_no": psn, "filing_type": "work-posting", "region": "370100",
               "valid_from": "2024-05-20", "valid_to": "2024-12-31"}),
    )
    .await;
    assert_eq!(
        (&f["status"], &f["procedure"], &f["late"]),
        (&json!("approved"), &json!("simple"), &json!(false)),
        "{f}"
    );
    let fid = f["filing_id"].as_str().unwrap().to_owned();
    let e = event_where(&mut tap, "medical.benefits.filing-recorded", |b| {
        b["filing_id"] == fid.as_str()
    })
    .await;
    assert_eq!(
        (&e["kind"], &e["subject"]),
        (&json!("cross-region"), &json!("work-posting 370100"))
    );
    let e = event_where(&mut tap, "medical.benefits.filing-approved", |b| {
        b["filing_id"] == fid.as_str()
    })
    .await;
    assert_eq!(e["by"], "simple");

    // Now the same visit settles, at the ratio the home region gives (Jinan 2020: no reduced
    // ratio): (1000 − 700) × 50 % = 150.00. The settlement names the filing.
    let s = ok(
        &client,
        "settle",
        settle_body("CR-S1", JN3, &m, who, "02", "1000.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "1000.00", "1000.00", "700.00", "150.00", "0.00", "150.00", "0.00", "0.00", "850.00"
        ],
        "{s}"
    );
    assert_eq!(s["filings"], json!([format!("filing:{fid}")]), "{s}");
    assert!(s["rule"].as_str().unwrap().starts_with("policy:"), "{s}");
    let e = event_where(&mut tap, "medical.benefits.settlement-completed", |b| {
        b["msgid"] == "CR-S1"
    })
    .await;
    assert_eq!(e["filings"], json!([format!("filing:{fid}")]));
    // A level-2 institution there: its own ratio, 200.00 × 60 % = 120.00.
    let m2 = outpatient(
        &client,
        "CR-V2",
        JN2,
        who,
        DAY,
        None,
        vec![line("1", "XA01", "2", "100.00", "200.00", DAY)],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("CR-S2", JN2, &m2, who, "02", "200.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "200.00", "200.00", "0.00", "120.00", "0.00", "120.00", "0.00", "0.00", "80.00"
        ],
        "{s}"
    );
    // A home-region settlement names no filing.
    let m3 = outpatient(
        &client,
        "CR-V3",
        H3,
        who,
        DAY,
        None,
        vec![line("1", "XA01", "1", "100.00", "100.00", DAY)],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("CR-S3", H3, &m3, who, "02", "100.00"),
    )
    .await;
    assert_eq!(s["hifp_pay"], "50.00", "{s}");
    assert_eq!(s.get("filings"), None, "{s}");
    // A claim in cash for care covered by the filing gets the filing's terms: the deductible
    // is used up, 500.00 × 50 % = 250.00.
    let c = ok(&client, "submit-claim", claim_body(who, JN3, DAY, "500.00")).await;
    assert_eq!(
        (&c["hifp_pay"], &c["filings"], c.get("unfiled_elsewhere")),
        (&json!("250.00"), &json!([format!("filing:{fid}")]), None),
        "{c}"
    );

    // Revoked: care there is refused again; a revoked filing is not revoked twice.
    let r = code(&client, "revoke-filing", json!({"filing_id": fid, "reason": " "})).await;
    assert_eq!(r.1.as_deref(), Some("reason"), "{}", r.2);
    let f = ok(
        &client,
        "revoke-filing",
        json!({"filing_id": fid, "reason": "posting ended"}),
    )
    .await;
    assert_eq!(f["status"], "revoked");
    event_where(&mut tap, "medical.benefits.filing-revoked", |b| {
        b["filing_id"] == fid.as_str()
    })
    .await;
    let r = code(
        &client,
        "revoke-filing",
        json!({"filing_id": fid, "reason": "again"}),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "{}", r.2);
    let m4 = outpatient(
        &client,
        "CR-V4",
        JN3,
        who,
        DAY,
        None,
        vec![line("1", "XA01", "1", "100.00", "100.00", DAY)],
    )
    .await;
    let r = code(
        &client,
        "settle",
        settle_body("CR-S4", JN3, &m4, who, "02", "100.00"),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::NotEligible), "{}", r.2);
    let st = ok(&client, "filing-status", json!({"filing_id": fid})).await;
    assert_eq!(
        (&st["status"], &st["status_reason"]),
        (&json!("revoked"), &json!("posting ended"))
    );
    assert_eq!(settlements(&env).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn chronic_disease_filings_by_full_review_and_the_simple_procedure_with_the_drug_limit_and_the_card() {
    let env = TestEnv::new();
    let client = env.client().await;
    let (psn, id) = covered(&env, &client, 972, "2024-03", "2024-03-20T10:00:00+08:00").await;
    let who = (psn.as_str(), id.as_str());
    let app = benefits_at(&env, "2024-05-20T10:00:00+08:00").await;
    let mut tap = env.tap("medical.benefits.*").await;
    let file = |d: &str| {
        json!({"psn_no": psn, "disease_code": d, "valid_from": "2024-05-20",
                                "documents": ["docs://chronic/diagnosis.jpg"]})
    };

    // Bad input: a disease not on the list, a start in the past.
    let r = code(&client, "file-chronic-disease", file("X99")).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("disease_code")),
        "{}",
        r.2
    );
    assert!(r.2.contains("I10"), "the reply lists the diseases: {}", r.2);
    let r = code(
        &client,
        "file-chronic-disease",
        json!({"psn_no": psn, "disease_code": "I10", "valid_from": "2024-05-01"}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("valid_from")),
        "{}",
        r.2
    );
    assert_eq!(filings(&env).await, 0);

    // Hypertension: excluded from the simple procedure, submitted for full review.
    let f = ok(&client, "file-chronic-disease", file("I10")).await;
    assert_eq!(
        (&f["status"], &f["procedure"]),
        (&json!("submitted"), &json!("full-review")),
        "{f}"
    );
    let hyp = f["filing_id"].as_str().unwrap().to_owned();
    event_where(&mut tap, "medical.benefits.filing-recorded", |b| {
        b["filing_id"] == hyp.as_str()
    })
    .await;
    let r = code(&client, "file-chronic-disease", file("I10")).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("disease_code")),
        "{}",
        r.2
    );

    // Pending: the ordinary terms. 200.00 of drugs (60 days) all under the year's deductible.
    let drugs = |sn: &str, boxes: &str, amount: &str| line(sn, "XD01", boxes, "100.00", amount, DAY);
    let m = outpatient(
        &client,
        "CH-V1",
        H3,
        who,
        DAY,
        Some("I10"),
        vec![drugs("1", "2", "200.00")],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("CH-S1", H3, &m, who, "03", "200.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "200.00", "200.00", "200.00", "0.00", "0.00", "0.00", "0.00", "0.00", "200.00"
        ],
        "{s}"
    );
    assert_eq!(s.get("filings"), None, "{s}");

    // The review: a bad step, then approval by the reviewer.
    let review = |action: &str, reason: Option<&str>| {
        let mut b = json!({"filing_id": hyp, "action": action, "reviewer": "审核员王"});
        if let Some(r) = reason {
            b["reason"] = json!(r);
        }
        b
    };
    let r = code(&client, "review-filing", review("maybe", None)).await;
    assert_eq!(r.1.as_deref(), Some("action"), "{}", r.2);
    let f = ok(&client, "review-filing", review("approve", None)).await;
    assert_eq!(f["status"], "approved");
    let e = event_where(&mut tap, "medical.benefits.filing-approved", |b| {
        b["filing_id"] == hyp.as_str()
    })
    .await;
    assert_eq!(e["by"], "审核员王");
    let r = code(&client, "review-filing", review("approve", None)).await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "reviewed once: {}", r.2);

    // Approved: the chronic terms, on the social security card alone.
    let m = outpatient(
        &client,
        "CH-V2",
        H3,
        who,
        DAY,
        Some("I10"),
        vec![drugs("1", "3", "300.00")],
    )
    .await;
    let r = code(
        &client,
        "settle",
        settle_body("CH-S2", H3, &m, who, "02", "300.00"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("mdtrt_cert_type")),
        "{}",
        r.2
    );
    assert!(r.2.contains("03"), "{}", r.2);
    // 90 days: its own deductible 100.00, then (300 − 100) × 80 % = 160.00.
    let s = ok(
        &client,
        "settle",
        settle_body("CH-S2", H3, &m, who, "03", "300.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "300.00", "300.00", "100.00", "160.00", "0.00", "160.00", "0.00", "0.00", "140.00"
        ],
        "{s}"
    );
    assert_eq!(s["pool_prop_selfpay"], "0.8", "{s}");
    assert_eq!(s["filings"], json!([format!("filing:{hyp}")]), "{s}");

    // More than 3 months of drugs in one visit: refused until lines are cancelled.
    let m = outpatient(
        &client,
        "CH-V3",
        H3,
        who,
        DAY,
        Some("I10"),
        vec![drugs("1", "3", "300.00"), drugs("2", "1", "100.00")],
    )
    .await;
    let r = code(
        &client,
        "settle",
        settle_body("CH-S3", H3, &m, who, "03", "400.00"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("feedetail")),
        "{}",
        r.2
    );
    assert!(r.2.contains("90") && r.2.contains("120"), "{}", r.2);
    ok(
        &client,
        "cancel-fees",
        json!({"mdtrt_id": m, "psn_no": psn, "feedetl_sn": ["2"]}),
    )
    .await;
    // The chronic deductible is used up: 300.00 × 80 % = 240.00.
    let s = ok(
        &client,
        "settle",
        settle_body("CH-S3", H3, &m, who, "03", "300.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "300.00", "300.00", "0.00", "240.00", "0.00", "240.00", "0.00", "0.00", "60.00"
        ],
        "{s}"
    );

    // Another diagnosis keeps the ordinary terms, and the ordinary deductible is its own:
    // 700.00 − 200.00 borne = 500.00 left, (600 − 500) × 50 % = 50.00.
    let m = outpatient(
        &client,
        "CH-V4",
        H3,
        who,
        DAY,
        Some("J18.9"),
        vec![line("1", "XA01", "1", "600.00", "600.00", DAY)],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("CH-S4", H3, &m, who, "02", "600.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "600.00", "600.00", "500.00", "50.00", "0.00", "50.00", "0.00", "0.00", "550.00"
        ],
        "{s}"
    );

    // The simple procedure (chronic kidney failure): approved at once; its diagnosis codes
    // (N18.5) start with the filed code.
    let f = ok(&client, "file-chronic-disease", file("N18")).await;
    assert_eq!(
        (&f["status"], &f["procedure"]),
        (&json!("approved"), &json!("simple")),
        "{f}"
    );
    let kidney = f["filing_id"].as_str().unwrap().to_owned();
    let e = event_where(&mut tap, "medical.benefits.filing-approved", |b| {
        b["filing_id"] == kidney.as_str()
    })
    .await;
    assert_eq!(e["by"], "simple");
    let r = code(
        &client,
        "review-filing",
        json!({"filing_id": kidney, "action": "approve", "reviewer": "x"}),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "{}", r.2);
    let m = outpatient(
        &client,
        "CH-V5",
        H3,
        who,
        DAY,
        Some("N18.5"),
        vec![drugs("1", "1", "100.00")],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("CH-S5", H3, &m, who, "03", "100.00"),
    )
    .await;
    assert_eq!(
        (&s["hifp_pay"], &s["act_pay_dedc"]),
        (&json!("80.00"), &json!("0.00")),
        "{s}"
    );
    assert_eq!(s["filings"], json!([format!("filing:{kidney}")]), "{s}");

    // Diabetes: full review, rejected (the reason required); its visits stay ordinary.
    let f = ok(&client, "file-chronic-disease", file("E11")).await;
    assert_eq!(f["status"], "submitted");
    let dia = f["filing_id"].as_str().unwrap().to_owned();
    let rej = |reason: Option<&str>| {
        let mut b = json!({"filing_id": dia, "action": "reject", "reviewer": "审核员王"});
        if let Some(r) = reason {
            b["reason"] = json!(r);
        }
        b
    };
    let r = code(&client, "review-filing", rej(None)).await;
    assert_eq!(r.1.as_deref(), Some("reason"), "{}", r.2);
    let f = ok(&client, "review-filing", rej(Some("诊断证明不全"))).await;
    assert_eq!(
        (&f["status"], &f["status_reason"]),
        (&json!("rejected"), &json!("诊断证明不全"))
    );
    let e = event_where(&mut tap, "medical.benefits.filing-rejected", |b| {
        b["filing_id"] == dia.as_str()
    })
    .await;
    assert_eq!(e["reason"], "诊断证明不全");
    let m = outpatient(
        &client,
        "CH-V6",
        H3,
        who,
        DAY,
        Some("E11.9"),
        vec![drugs("1", "1", "100.00")],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("CH-S6", H3, &m, who, "02", "100.00"),
    )
    .await;
    assert_eq!((&s["hifp_pay"], s.get("filings")), (&json!("50.00"), None), "{s}");
    assert_eq!(
        common::count(
            &env,
            B,
            "select count(*) from settlements where terms = 'chronic-disease'"
        )
        .await,
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn a_special_drug_filing_changes_that_drug_at_that_institution_only() {
    let env = TestEnv::new();
    let client = env.client().await;
    let (psn, id) = covered(&env, &client, 973, "2024-03", "2024-03-20T10:00:00+08:00").await;
    let who = (psn.as_str(), id.as_str());
    let app = benefits_at(&env, "2024-05-20T10:00:00+08:00").await;
    let file = |drug: &str, inst: &str| json!({"psn_no": psn, "med_list_codg": drug, "fixmedins_code": inst, "valid_from": "2024-05-20"});
    for (body, want, field) in [
        (file("NOPE", H3), ErrorCode::NotFound, "med_list_codg"),
        (file("XC01", H3), ErrorCode::InvalidField, "med_list_codg"),
        (file("XT01", "H000"), ErrorCode::NotFound, "fixmedins_code"),
    ] {
        let r = code(&client, "file-special-drug", body.clone()).await;
        assert_eq!(
            (r.0, r.1.as_deref()),
            (Some(want), Some(field)),
            "{body}: {}",
            r.2
        );
    }
    assert_eq!(filings(&env).await, 0);
    let f = ok(&client, "file-special-drug", file("XT01", H3)).await;
    assert_eq!(f["status"], "approved", "{f}");
    let fid = f["filing_id"].as_str().unwrap().to_owned();

    // At the filed institution: the other lines first, (1000 − 700) × 50 % = 150.00, then
    // the special drug at 70 %: 2000.00 × 70 % = 1400.00.
    let m = outpatient(
        &client,
        "SD-V1",
        H3,
        who,
        DAY,
        None,
        vec![
            line("1", "XA01", "1", "1000.00", "1000.00", DAY),
            line("2", "XT01", "1", "2000.00", "2000.00", DAY),
        ],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("SD-S1", H3, &m, who, "02", "3000.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "3000.00", "3000.00", "700.00", "1550.00", "0.00", "1550.00", "0.00", "0.00", "1450.00"
        ],
        "{s}"
    );
    assert_eq!(s["filings"], json!([format!("filing:{fid}")]), "{s}");
    // Elsewhere: the ordinary terms (level 2, 60 %).
    let m = outpatient(
        &client,
        "SD-V2",
        H2,
        who,
        DAY,
        None,
        vec![line("1", "XT01", "1", "1000.00", "1000.00", DAY)],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("SD-S2", H2, &m, who, "02", "1000.00"),
    )
    .await;
    assert_eq!(
        (&s["hifp_pay"], s.get("filings")),
        (&json!("600.00"), None),
        "{s}"
    );
    // Without the filing (revoked), at the same institution: 50 %.
    ok(
        &client,
        "revoke-filing",
        json!({"filing_id": fid, "reason": "treatment ended"}),
    )
    .await;
    let m = outpatient(
        &client,
        "SD-V3",
        H3,
        who,
        DAY,
        None,
        vec![line("1", "XT01", "1", "1000.00", "1000.00", DAY)],
    )
    .await;
    let s = ok(
        &client,
        "settle",
        settle_body("SD-S3", H3, &m, who, "02", "1000.00"),
    )
    .await;
    assert_eq!(
        (&s["hifp_pay"], s.get("filings")),
        (&json!("500.00"), None),
        "{s}"
    );
    app.stop().await;
}

#[tokio::test]
async fn late_cross_region_filing_after_the_wuhan_settlement_stop_and_a_cash_claim_where_too_late() {
    let env = TestEnv::new();
    let client = env.client().await;
    // Covered from 2021-12 (November 2021 paid).
    let (psn, id) = covered(&env, &client, 974, "2021-11", "2021-11-20T10:00:00+08:00").await;
    let who = (psn.as_str(), id.as_str());

    // During the stop (12-22 18:00 → 12-31 23:00) a filing is refused like settlement.
    let app = benefits_at(&env, "2021-12-24T10:00:00+08:00").await;
    wait_control_consumed(&env, &[B]).await;
    let t = Timetable::from_yaml(WUHAN).expect("the timetable loads");
    let n = t.orders.len() as i64;
    for order in t.orders {
        broadcast_control(
            &env,
            &ControlMessage::Order {
                order: Box::new(order),
            },
        )
        .await;
    }
    wait_for("benefits to store the timetable", WAIT, || async {
        (common::count(&env, B, "select count(*) from freeze_orders").await == n).then_some(())
    })
    .await;
    let filing = |from: &str| json!({"psn_no": psn, "filing_type": "long-term-residence", "region": "370100", "valid_from": from});
    let r = send(
        &client,
        Line::Medical,
        B,
        "file-cross-region",
        filing("2021-12-24"),
    )
    .await;
    assert_eq!(r.status, ReplyStatus::Suspended, "{r:?}");
    app.stop().await;

    // 2022-01-02: a stay in Jinan during the stop (12-23 → 12-25) is re-entered 补录.
    let app = benefits_at(&env, "2022-01-02T10:00:00+08:00").await;
    let adm = ok(
        &client,
        "admit",
        visit_body("LF-ADM", JN3, who, "2021-12-23 09:00:00", None),
    )
    .await;
    let stay = adm["mdtrt_id"].as_str().unwrap().to_owned();
    ok(
        &client,
        "discharge",
        json!({"mdtrt_id": stay, "psn_no": psn, "endtime": "2021-12-25 10:00:00"}),
    )
    .await;
    upload(
        &client,
        &stay,
        &psn,
        vec![line(
            "1",
            "XA01",
            "1",
            "3000.00",
            "3000.00",
            "2021-12-23 10:00:00",
        )],
    )
    .await;
    let r = code(
        &client,
        "settle",
        settle_body("LF-S1", JN3, &stay, who, "02", "3000.00"),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::NotEligible), "unfiled: {}", r.2);
    // A filing from before the stop is not made late: claim in cash instead.
    let r = code(&client, "file-cross-region", filing("2021-12-10")).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("valid_from")),
        "{}",
        r.2
    );
    assert!(r.2.contains("submit-claim"), "{}", r.2);
    assert_eq!(filings(&env).await, 0);
    // 补登记 from inside the stop.
    let f = ok(&client, "file-cross-region", filing("2021-12-23")).await;
    assert_eq!(
        (&f["status"], &f["late"]),
        (&json!("approved"), &json!(true)),
        "{f}"
    );
    let fid = f["filing_id"].as_str().unwrap().to_owned();
    // The stay settles: 800.00 deductible, (3000 − 800) × 85 % = 1870.00.
    let s = ok(
        &client,
        "settle",
        settle_body("LF-S1", JN3, &stay, who, "02", "3000.00"),
    )
    .await;
    assert_eq!(
        split_of(&s),
        [
            "3000.00", "3000.00", "800.00", "1870.00", "0.00", "1870.00", "0.00", "0.00", "1130.00"
        ],
        "{s}"
    );
    assert_eq!(s["filings"], json!([format!("filing:{fid}")]), "{s}");
    // Outpatient care in Jinan before the stop (12-10), outside every filing: claimed in
    // cash at the unfiled terms, (1000 − 700) × (50 % − 10 %) = 120.00.
    let c = ok(
        &client,
        "submit-claim",
        claim_body(who, JN3, "2021-12-10 09:00:00", "1000.00"),
    )
    .await;
    assert_eq!(
        (&c["hifp_pay"], &c["unfiled_elsewhere"], &c["retroactive"]),
        (&json!("120.00"), &json!(true), &json!(false)),
        "{c}"
    );
    app.stop().await;

    // 2022-04-15: the late-filing window (90 days after 12-31 23:00) has closed.
    let app = benefits_at(&env, "2022-04-15T10:00:00+08:00").await;
    let r = code(&client, "file-cross-region", filing("2021-12-24")).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("valid_from")),
        "{}",
        r.2
    );
    assert!(
        r.2.contains("late-filing window") && r.2.contains("submit-claim"),
        "{}",
        r.2
    );
    assert_eq!(filings(&env).await, 1);
    app.stop().await;
}

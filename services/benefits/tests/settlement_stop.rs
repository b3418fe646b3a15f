//! What a settlement stop leaves behind (issue 10 §3), replayed from the agencies' own
//! timetables on drill clocks: the timetable is sent through `insurance.control`, and
//! benefits is restarted at each moment of the story with the clock set to it (a restart
//! during a freeze comes up frozen, so this is also what an operator's restart would do).
//!
//! Wuhan, December 2021 (cutovers/wuhan-2021.yaml, DOMAIN.md §8): an inpatient admitted on
//! 12-18 gets an interim settlement 中途结算 at 12-22 16:30, before the 18:00 stop; at 18:00
//! settlement is refused `suspended` until 12-31 23:00; the patient is discharged on 12-25
//! while the system is down; on 01-02 the institution re-enters 补录 the discharge and the
//! fees with their real dates and settles them with no second deductible for the stay.
//!
//! Hangzhou, July 2020 (cutovers/hangzhou-2020.yaml): settlement stays open through phase 2
//! while the counters only take in paperwork.
//!
//! Figures: the seeded level-3 inpatient policy (placeholders, V1__benefits.sql): deductible
//! 800.00, pooled fund 85 %.

mod common;

use common::benefits_at;

use common::{B, H3, code, covered_staff_from, ok, split_of, upload, visit};
use contracts::freeze::{ControlMessage, Timetable};
use contracts::{ErrorCode, Line, ReplyStatus};
use serde_json::{Value, json};
use testkit::services::{broadcast_control, wait_control_consumed};
use testkit::{TestEnv, WAIT, credit_code, id_number, send, wait_for};

const WUHAN: &str = include_str!("../../../cutovers/wuhan-2021.yaml");
const HANGZHOU: &str = include_str!("../../../cutovers/hangzhou-2020.yaml");

async fn plan(env: &TestEnv, timetable: &str) {
    wait_control_consumed(env, &[B]).await;
    let t = Timetable::from_yaml(timetable).expect("the timetable loads");
    let n = t.orders.len() as i64;
    for order in t.orders {
        broadcast_control(
            env,
            &ControlMessage::Order {
                order: Box::new(order),
            },
        )
        .await;
    }
    wait_for("benefits to store the timetable", WAIT, || async {
        (common::count(env, B, "select count(*) from freeze_orders").await == n).then_some(())
    })
    .await;
}

fn settle_body(msgid: &str, mdtrt: &str, who: (&str, &str), medfee: &str, mid: Option<&str>) -> Value {
    let mut b = json!({"msgid": msgid, "fixmedins_code": H3, "mdtrt_id": mdtrt, "psn_no": who.0,
           "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "medfee_sumamt": medfee,
           "acct_used_flag": "0", "insutype": "310"});
    if let Some(m) = mid {
        b["mid_setl_flag"] = json!(m);
    }
    b
}

fn fee_at(sn: &str, amount: &str, at: &str) -> Value {
    json!({"feedetl_sn": sn, "med_list_codg": "XA01", "cnt": "1", "pric": amount,
           "det_item_fee_sumamt": amount, "fee_ocur_time": at})
}

#[tokio::test]
async fn wuhan_interim_settlement_stop_and_reentry_without_a_second_deductible_and_hangzhou_open() {
    let env = TestEnv::new();
    let client = env.client().await;
    // Covered from 2021-12 (November 2021 paid).
    let setup = common::spawn(&env).await;
    let employer = credit_code(951);
    let ids = [id_number(951)];
    let psns = covered_staff_from(
        &client,
        &env,
        &employer,
        &ids,
        "2021-11",
        "2021-11-20T10:00:00+08:00",
    )
    .await;
    let who = (psns[0].as_str(), ids[0].as_str());
    setup.stop().await;

    // --- Wuhan, 2021-12-22 16:30: the patient admitted on 12-18 is still in hospital.
    let app = benefits_at(&env, "2021-12-22T16:30:00+08:00").await;
    plan(&env, WUHAN).await;
    let adm = visit(&client, "admit", "WH-ADM", H3, who, "2021-12-18 09:00:00", false).await;
    let stay = adm["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client,
        &stay,
        who.0,
        vec![
            fee_at("1", "3000.00", "2021-12-18 10:00:00"),
            fee_at("2", "2000.00", "2021-12-21 10:00:00"),
        ],
    )
    .await;
    // Still in hospital: a final settlement is refused, an interim one is taken.
    let r = code(
        &client,
        "settle",
        settle_body("WH-S0", &stay, who, "5000.00", None),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "{}", r.2);
    assert!(r.2.contains("mid_setl_flag"), "{}", r.2);
    let interim = ok(
        &client,
        "settle",
        settle_body("WH-S1", &stay, who, "5000.00", Some("1")),
    )
    .await;
    // 5000.00 in scope: deductible 800.00, pooled fund (5000 − 800) × 85 % = 3570.00, cash 1430.00.
    assert_eq!(
        split_of(&interim),
        [
            "5000.00", "5000.00", "800.00", "3570.00", "0.00", "3570.00", "0.00", "0.00", "1430.00"
        ],
        "{interim}"
    );
    assert_eq!(interim["mid_setl_flag"], true);
    assert!(
        interim["setl_time"]
            .as_str()
            .unwrap()
            .starts_with("2021-12-22T16:3"),
        "settled on the drill clock: {interim}"
    );
    app.stop().await;

    // --- 12-22 18:00: the benefits system and real-time settlement stop.
    let app = benefits_at(&env, "2021-12-22T18:00:05+08:00").await;
    let refused = send(
        &client,
        Line::Medical,
        B,
        "upload-fees",
        json!({"mdtrt_id": stay, "psn_no": who.0,
               "feedetail": [fee_at("3", "3000.00", "2021-12-23 10:00:00")]}),
    )
    .await;
    assert_eq!(refused.status, ReplyStatus::Suspended, "{refused:?}");
    let s = refused.result.clone().unwrap();
    assert_eq!(s["order"], "wuhan-2021-medical-settlement", "{s}");
    assert_eq!(s["resumes_at"], "2021-12-31T23:00:00+08:00", "{s}");
    let refused = send(
        &client,
        Line::Medical,
        B,
        "settle",
        settle_body("WH-S2", &stay, who, "3000.00", None),
    )
    .await;
    assert_eq!(refused.status, ReplyStatus::Suspended, "{refused:?}");
    // Queries stay answered.
    let info = send(
        &client,
        Line::Medical,
        B,
        "person-info",
        json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": who.1}),
    )
    .await;
    assert_eq!(info.status, ReplyStatus::Ok, "{info:?}");
    app.stop().await;

    // --- 2022-01-02: re-entered with their real dates (discharged 12-25) and settled.
    let app = benefits_at(&env, "2022-01-02T10:00:00+08:00").await;
    let d = ok(
        &client,
        "discharge",
        json!({"mdtrt_id": stay, "psn_no": who.0, "endtime": "2021-12-25 10:00:00"}),
    )
    .await;
    assert_eq!(d["status"], "discharged");
    upload(
        &client,
        &stay,
        who.0,
        vec![
            fee_at("3", "2000.00", "2021-12-23 10:00:00"),
            fee_at("4", "1000.00", "2021-12-25 09:00:00"),
        ],
    )
    .await;
    // The settlement after the restart is the one the suspended attempt would have been
    // (same msgid: that answer was not stored as final).
    let fin = ok(
        &client,
        "settle",
        settle_body("WH-S2", &stay, who, "3000.00", None),
    )
    .await;
    // No second deductible: 3000.00 × 85 % = 2550.00 (with one it would be 1870.00).
    assert_eq!(
        split_of(&fin),
        [
            "3000.00", "3000.00", "0.00", "2550.00", "0.00", "2550.00", "0.00", "0.00", "450.00"
        ],
        "{fin}"
    );
    assert_eq!(fin.get("mid_setl_flag"), None, "a final settlement: {fin}");
    assert!(
        fin["setl_time"].as_str().unwrap().starts_with("2022-01-02"),
        "{fin}"
    );
    // The stay bore its deductible once, over both settlements.
    let borne = common::count(
        &env,
        B,
        &format!(
            "select (sum(act_pay_dedc) * 100)::bigint from settlements where mdtrt_id = '{stay}' and status = 'settled'"
        ),
    )
    .await;
    assert_eq!(borne, 80000, "800.00 once");
    // Settled lines are not settled twice, and a second final settlement is refused.
    let r = code(
        &client,
        "settle",
        settle_body("WH-S3", &stay, who, "3000.00", None),
    )
    .await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "{}", r.2);
    // The interim settlement cannot be cancelled under the later one that relied on it.
    let interim_id = interim["setl_id"].as_str().unwrap();
    let fin_id = fin["setl_id"].as_str().unwrap();
    let cancel =
        |msgid: &str, setl: &str| json!({"msgid": msgid, "setl_id": setl, "mdtrt_id": stay, "psn_no": who.0});
    let r = code(&client, "cancel-settlement", cancel("WH-C1", interim_id)).await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "{}", r.2);
    assert!(r.2.contains(fin_id), "{}", r.2);
    // Bad input changes nothing.
    let r = code(
        &client,
        "settle",
        settle_body("WH-S4", &stay, who, "3000.00", Some("2")),
    )
    .await;
    assert_eq!(r.1.as_deref(), Some("mid_setl_flag"), "{}", r.2);

    // 追溯报销 and deadlines 顺延. A policy version from 2021-12-01 with a 10-day claim
    // window (the seed's figures otherwise; the window is a placeholder figure for the test).
    let ratios: Vec<Value> = [
        ("inpatient", "3", "800.00", "0.85"),
        ("inpatient", "2", "400.00", "0.88"),
        ("inpatient", "1", "200.00", "0.90"),
        ("outpatient", "3", "0.00", "0.50"),
        ("outpatient", "2", "0.00", "0.60"),
        ("outpatient", "1", "0.00", "0.70"),
    ]
    .iter()
    .map(|(k, l, d, r)| json!({"kind": k, "hosp_lv": l, "deductible": d, "ratio": r}))
    .collect();
    ok(
        &client,
        "set-benefit-policy",
        json!({"insutype": "310", "effective_from": "2021-12-01", "annual_cap": "150000.00",
               "outpatient_deductible": "700.00", "large_ratio": "0.90", "large_cap": "400000.00",
               "account_allowed": true, "arrears_restore_retroactive": false, "claim_window_days": 10,
               "source": "test", "reason": "a 10-day claim window", "ratios": ratios}),
    )
    .await;
    let claim = |begn: &str, reason: &str| {
        json!({"psn_no": who.0, "insutype": "310", "kind": "outpatient", "fixmedins_code": H3,
               "begntime": begn, "reason": reason,
               "documents": [{"kind": "invoice", "uri": "docs://wh/invoice.jpg"}],
               "feedetail": [fee_at("1", "1000.00", begn)], "medfee_sumamt": "1000.00"})
    };
    // Outpatient care on 12-25, paid in cash during the stop: reimbursed afterwards
    // (window to 2022-01-05 00:00, after the stop began: + 9 days 5 hours).
    let c = ok(
        &client,
        "submit-claim",
        claim("2021-12-25 09:00:00", "settlement-stop"),
    )
    .await;
    assert_eq!(c["retroactive"], true, "{c}");
    assert_eq!(c["submit_by"], "2022-01-14T05:00:00+08:00", "{c}");
    // The year's outpatient deductible (700.00) is untouched by the stay: (1000 − 700) × 50 %.
    assert_eq!(c["hifp_pay"], "150.00", "{c}");
    // Care on 12-15 paid in cash for another reason: its window ended 2021-12-26 00:00,
    // inside the stop (12-22 18:00 → 12-31 23:00), and is extended by the stop's 9 days
    // 5 hours to 2022-01-04 05:00: on 01-02 it is still open.
    let c = ok(&client, "submit-claim", claim("2021-12-15 09:00:00", "no-card")).await;
    assert_eq!(c["retroactive"], false, "{c}");
    assert_eq!(c["submit_by"], "2022-01-04T05:00:00+08:00", "{c}");
    // Care before the stop is not retroactive, whatever the reason given (its deadline,
    // 12-31 00:00, fell inside the stop: extended to 2022-01-09 05:00).
    let c = ok(
        &client,
        "submit-claim",
        claim("2021-12-20 09:00:00", "settlement-stop"),
    )
    .await;
    assert_eq!(c["retroactive"], false, "{c}");
    assert_eq!(c["submit_by"], "2022-01-09T05:00:00+08:00", "{c}");
    // A window that closed before the stop (care on 12-05: 12-16 00:00) is not extended.
    let r = code(&client, "submit-claim", claim("2021-12-05 09:00:00", "no-card")).await;
    assert_eq!(r.0, Some(ErrorCode::Conflict), "{}", r.2);
    assert!(r.2.contains("2021-12-16T00:00:00+08:00"), "{}", r.2);
    assert_eq!(
        common::count(&env, B, "select count(*) from claims").await,
        3,
        "refused claims are not stored"
    );
    app.stop().await;

    // --- Hangzhou, 2020-07-30: phase 2 (every channel suspended, counters take in paperwork)
    // leaves real-time settlement at institutions open.
    let env2 = TestEnv::new();
    let client2 = env2.client().await;
    // Hangzhou's own rules (330100); covered from 2020-07 (June 2020 paid).
    let setup = common::spawn_in(&env2, "330100").await;
    let employer = credit_code(952);
    let ids = [id_number(952)];
    let psns = covered_staff_from(
        &client2,
        &env2,
        &employer,
        &ids,
        "2020-06",
        "2020-06-20T10:00:00+08:00",
    )
    .await;
    setup.stop().await;
    let who = (psns[0].as_str(), ids[0].as_str());
    let app = benefits_at(&env2, "2020-07-30T10:00:00+08:00").await;
    plan(&env2, HANGZHOU).await;
    let v = visit(
        &client2,
        "register-visit",
        "HZ-V1",
        H3,
        who,
        "2020-07-30 09:30:00",
        false,
    )
    .await;
    let m = v["mdtrt_id"].as_str().unwrap().to_owned();
    upload(
        &client2,
        &m,
        who.0,
        vec![fee_at("1", "100.00", "2020-07-30 09:40:00")],
    )
    .await;
    let s = ok(&client2, "settle", settle_body("HZ-S1", &m, who, "100.00", None)).await;
    assert_eq!(s["medfee_sumamt"], "100.00");
    assert!(s["setl_time"].as_str().unwrap().starts_with("2020-07-30"), "{s}");
    app.stop().await;
}

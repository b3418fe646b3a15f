//! The rules as the agencies' notices state them (issue 8), through the broker, with the
//! notices' own figures and dates as the vectors.

mod common;

use common::ok;

use contracts::{ErrorCode, Line};
use serde_json::json;
use testkit::{TestEnv, WAIT, credit_code, id_number, send, wait_for};

const C: &str = "collection";
const E: &str = "enrollment";

async fn count(db: &deadpool_postgres::Object, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

async fn person_id(db: &deadpool_postgres::Object, id_number: &str) -> String {
    db.query_one(
        "select person_id::text from persons where id_number = $1",
        &[&id_number],
    )
    .await
    .unwrap()
    .get(0)
}

/// An employer with `n` employees on the medical line from `month`, covered in employee
/// medical; returns the credit code and the ID numbers.
async fn employer_with_staff(
    client: &messaging::client::CommandClient,
    seed: u32,
    n: u32,
    month: &str,
) -> (String, Vec<String>) {
    let employer = credit_code(seed);
    ok(
        client,
        Line::Medical,
        E,
        "register-employer",
        json!({"credit_code": employer, "name": "单位", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    let ids: Vec<String> = (0..n).map(|i| id_number(seed * 100 + i)).collect();
    ok(
        client,
        Line::Medical,
        E,
        "add-staff",
        json!({"employer_credit_code": employer,
               "persons": ids.iter().map(|id| json!({"id_number": id, "name": "员工", "phone": "13800000000"})).collect::<Vec<_>>(),
               "insurance_types": ["employee_medical"], "month": month}),
    )
    .await;
    (employer, ids)
}

/// A flexible worker enrolled in employee medical from `month`, once collection's projection
/// holds `covered` coverage rows in all.
async fn flexible_worker(
    client: &messaging::client::CommandClient,
    cdb: &deadpool_postgres::Object,
    id: &str,
    month: &str,
    covered: i64,
) {
    ok(
        client,
        Line::Medical,
        E,
        "enroll-person",
        json!({"id_number": id, "name": "灵活", "phone": "13800000000", "category": "flexible",
               "insurance_types": ["employee_medical"], "effective_month": month}),
    )
    .await;
    wait_for("projection", WAIT, || async {
        (count(cdb, "select count(*) from coverage").await == covered).then_some(())
    })
    .await;
}

#[tokio::test]
async fn wuhan_2022_is_due_within_the_month_and_the_employer_share_is_rounded_once() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.*").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (employer, ids) = employer_with_staff(&client, 80, 3, "2022-01").await;
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 3).then_some(())
    })
    .await;
    ok(
        &client,
        Line::Medical,
        C,
        "declare-wages",
        json!({"employer_credit_code": employer, "year": 2022,
               "wages": ids.iter().map(|id| json!({"id_number": id, "previous_year_average": "6666.69"})).collect::<Vec<_>>()}),
    )
    .await;
    tap.expect_n("medical.collection.base-determined", 3).await;

    // Month M within M, before its last 5 working days (DOMAIN.md §4, issue 8).
    let mut assessment = std::collections::BTreeMap::new();
    for (month, due) in [
        ("2022-01", "2022-01-25"), // 01-29/30 are make-up working days, 01-31 Spring Festival
        ("2022-02", "2022-02-21"), // 02-22 … 02-28 are the last 5 working days
        ("2022-03", "2022-03-24"), // 03-25 … 03-31 are the last 5 working days
    ] {
        let r = ok(&client, Line::Medical, C, "assess-month", json!({"month": month})).await;
        // Employer 8 % of 20000.07 = 1600.01 (not 3 × 533.34 = 1600.02) + 3 × 133.33.
        assert_eq!(r["total_change"], "2000.00", "{month}: {r}");
        let ev = tap.expect("medical.collection.contribution-assessed").await.body;
        assert_eq!(ev["deadline"], due, "Wuhan {month}");
        assert_eq!(ev["amount"], "2000.00");
        assert_eq!(
            ev["lines"],
            json!([
                {"insurance_type": "employee_medical", "share": "employee", "persons": 3, "amount": "399.99"},
                {"insurance_type": "employee_medical", "share": "employer", "persons": 3, "amount": "1600.01"}
            ])
        );
        assessment.insert(month, ev["assessment_id"].as_str().unwrap().to_owned());
    }

    // The statement still shows each person's base and own 2 %, and the employer's share on
    // the sum with the rounding that makes it add up.
    let st = ok(
        &client,
        Line::Medical,
        C,
        "employer-statement",
        json!({"employer_credit_code": employer, "month": "2022-03"}),
    )
    .await;
    assert_eq!(st["assessment"]["due"], "2000.00");
    assert_eq!(st["assessment"]["deadline"], "2022-03-24");
    let lines = st["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 6, "3 persons × employer/employee: {st}");
    for id in &ids {
        let own = lines
            .iter()
            .find(|l| l["id_number"] == id.as_str() && l["share"] == "employee")
            .unwrap();
        assert_eq!(
            (own["base"].as_str(), own["amount"].as_str()),
            (Some("6666.69"), Some("133.33"))
        );
    }
    assert_eq!(
        st["employer_shares"],
        json!([{"insurance_type": "employee_medical", "base": "20000.07", "amount": "1600.01", "rounding": "-0.01"}])
    );

    // Arrears are judged by when the money was paid: March is not judged before the 5
    // working days a payment takes to reach the fund have passed (03-25 … 03-31).
    let r = ok(
        &client,
        Line::Medical,
        C,
        "detect-arrears",
        json!({"as_of": "2022-03-31"}),
    )
    .await;
    assert_eq!(r["newly_in_arrears"], 2, "January and February only: {r}");
    let mut detected = tap.expect_n("medical.collection.arrears-detected", 2).await;
    detected.sort_by(|a, b| a.body["month"].as_str().cmp(&b.body["month"].as_str()));
    // Benefits are affected from the 1st of the month after the deadline, but in Wuhan not
    // before 2022-04-01 ("4月1日起").
    for e in &detected {
        assert_eq!(
            (
                e.body["benefits_affected_from"].as_str(),
                e.body["system_caused"].as_bool()
            ),
            (Some("2022-04-01"), Some(false)),
            "{}",
            e.body
        );
    }
    let r = ok(
        &client,
        Line::Medical,
        C,
        "detect-arrears",
        json!({"as_of": "2022-04-01"}),
    )
    .await;
    assert_eq!(r["newly_in_arrears"], 1, "March, now past 03-31: {r}");
    let march = tap.expect("medical.collection.arrears-detected").await.body;
    assert_eq!(
        (march["month"].as_str(), march["benefits_affected_from"].as_str()),
        (Some("2022-03"), Some("2022-04-01"))
    );
    assert_eq!(
        march["persons"].as_array().unwrap().len(),
        3,
        "the rounding item is nobody"
    );

    // The tax authority reports March's payment late; it was made on 03-24 (CST): on time,
    // so the month was never in arrears.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "record-payment",
        json!({"assessment_id": assessment["2022-03"], "amount": "2000.00",
               "paid_at": "2022-03-24T23:59:00+08:00", "tax_receipt_no": "WH-2022-03"}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["in_arrears"].as_bool()),
        (Some("settled"), Some(false))
    );
    let paid = tap.expect("medical.collection.payment-recorded").await.body;
    assert_eq!(paid["on_time"], true);
    tap.expect("medical.collection.contribution-settled").await;
    let cleared = tap.expect("medical.collection.arrears-cleared").await.body;
    assert_eq!(cleared["paid_on_time"], true, "{cleared}");

    // January paid at 16:30 UTC on its deadline day is 00:30 on 01-26 in Beijing: late.
    ok(
        &client,
        Line::Medical,
        C,
        "record-payment",
        json!({"assessment_id": assessment["2022-01"], "amount": "2000.00",
               "paid_at": "2022-01-25T16:30:00Z", "tax_receipt_no": "WH-2022-01"}),
    )
    .await;
    let paid = tap.expect("medical.collection.payment-recorded").await.body;
    assert_eq!(paid["on_time"], false, "judged in China Standard Time: {paid}");
    tap.expect("medical.collection.contribution-settled").await;
    let cleared = tap.expect("medical.collection.arrears-cleared").await.body;
    assert_eq!(cleared["paid_on_time"], false, "a back-payment (补缴)");

    // A debit agreement is for flexible workers only.
    let r = send(
        &client,
        Line::Medical,
        C,
        "set-debit-agreement",
        json!({"id_number": ids[0], "signed": true, "from_month": "2022-03", "account": "622200000000000123"}),
    )
    .await;
    assert_eq!(
        (r.error_code(), r.error.as_ref().unwrap().field.as_deref()),
        (Some(ErrorCode::NotEligible), Some("id_number")),
        "{r:?}"
    );
    let r = send(
        &client,
        Line::Medical,
        C,
        "set-debit-agreement",
        json!({"id_number": id_number(999), "signed": true, "from_month": "2022-03", "account": "622200000000000123"}),
    )
    .await;
    assert_eq!(r.error_code(), Some(ErrorCode::NotFound), "{r:?}");
    assert_eq!(count(&cdb, "select count(*) from debit_agreements").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_retiree_pays_the_premium_only_once_the_minimum_years_are_met() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.contribution-assessed").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (met, not_met) = (id_number(301), id_number(302));
    for (id, years) in [(&met, true), (&not_met, false)] {
        ok(
            &client,
            Line::Medical,
            E,
            "enroll-person",
            json!({"id_number": id, "name": "退休", "phone": "13800000000", "category": "retiree",
                   "insurance_types": ["employee_medical", "large_amount_medical"],
                   "effective_month": "2022-01", "minimum_years_met": years}),
        )
        .await;
    }
    let r = send(
        &client,
        Line::Medical,
        E,
        "enroll-person",
        json!({"id_number": id_number(303), "name": "灵活", "phone": "13800000000", "category": "flexible",
               "insurance_types": ["employee_medical"], "effective_month": "2022-01", "minimum_years_met": true}),
    )
    .await;
    assert_eq!(
        (r.error_code(), r.error.as_ref().unwrap().field.as_deref()),
        (Some(ErrorCode::InvalidField), Some("minimum_years_met"))
    );
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 4).then_some(())
    })
    .await;
    ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2022-03"}),
    )
    .await;
    let events = tap.expect_n("medical.collection.contribution-assessed", 2).await;
    let of = |id: String| {
        events
            .iter()
            .find(|e| e.body["payer_id"] == id.as_str())
            .unwrap()
            .body
            .clone()
    };
    let met_ev = of(person_id(&cdb, &met).await);
    assert_eq!(met_ev["amount"], "7.00", "the large-amount premium only");
    let not_met_ev = of(person_id(&cdb, &not_met).await);
    // 6 % of the (PLACEHOLDER) standard base 6046.00, plus the premium every retiree owes.
    assert_eq!(
        not_met_ev["lines"],
        json!([
            {"insurance_type": "employee_medical", "share": "person", "persons": 1, "amount": "362.76"},
            {"insurance_type": "large_amount_medical", "share": "person", "persons": 1, "amount": "7.00"}
        ])
    );
    assert_eq!(not_met_ev["amount"], "369.76");
    app.stop().await;
}

#[tokio::test]
async fn a_new_floor_re_derives_the_bases_and_adjusts_assessed_months() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.*").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (employer, ids) = employer_with_staff(&client, 81, 1, "2022-01").await;
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 1).then_some(())
    })
    .await;
    let r = ok(
        &client,
        Line::Medical,
        C,
        "declare-wages",
        json!({"employer_credit_code": employer, "year": 2022,
               "wages": [{"id_number": ids[0], "previous_year_average": "3000.00"}]}),
    )
    .await;
    assert_eq!(
        r["bases"][0]["base"], "3627.60",
        "raised to the (placeholder) floor"
    );
    tap.expect("medical.collection.base-determined").await;
    let r = ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2022-03"}),
    )
    .await;
    assert_eq!(r["total_change"], "362.76", "290.21 + 72.55");
    tap.expect("medical.collection.contribution-assessed").await;

    // A new 2022 row with a lower floor: the open 2021 row is closed (a new version of it,
    // no unique-index failure), the declared 3000.00 is re-derived, March is adjusted.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "set-policy",
        json!({"region": "420100", "insurance_type": "employee_medical", "effective_from": "2022-01",
               "standard_base": "6046.00", "floor": "3000.00", "cap": "18138.00",
               "employer_rate": "0.08", "employee_rate": "0.02", "flexible_rate": "0.06",
               "retiree_monthly_premium": "0", "deadline": {"kind": "last_working_days", "n": 5},
               "flexible_deadline": {"kind": "debit_day", "day": 20}, "deadline_month": "same_month",
               "arrival_working_days": 5, "benefits_affected_from": "2022-04-01",
               "reason": "2022 floor published"}),
    )
    .await;
    assert_eq!(
        (r["bases_rederived"].as_i64(), r["months_reassessed"].as_i64()),
        (Some(1), Some(1)),
        "{r}"
    );
    // The adjustment, the re-derived base and the policy change, in whatever order the
    // outbox publishes them.
    let events = tap.collect(3, WAIT).await;
    let find = |key: &str| {
        events
            .iter()
            .find(|e| e.routing_key == key)
            .unwrap_or_else(|| panic!("no {key} among {events:?}"))
            .body
            .clone()
    };
    let base = find("medical.collection.base-determined");
    assert_eq!(base["bases"][0]["base"], "3000.00");
    assert_eq!(base["bases"][0]["clamp"], "none");
    find("medical.collection.policy-changed");
    let adj = find("medical.collection.contribution-assessed");
    // (3000.00 - 3627.60) × 8 % = -50.21, × 2 % = -12.55.
    assert_eq!(
        (
            adj["kind"].as_str(),
            adj["amount"].as_str(),
            adj["total_due"].as_str()
        ),
        (Some("adjustment"), Some("-62.76"), Some("300.00")),
        "{adj}"
    );
    let p = ok(
        &client,
        Line::Medical,
        C,
        "get-policy",
        json!({"region": "420100", "insurance_type": "employee_medical", "month": "2021-06"}),
    )
    .await;
    assert_eq!(
        p["rule"]["effective_to"], "2021-12",
        "the 2021 row was closed: {p}"
    );
    // Setting the same row again replaces it: still no unique-index failure, nothing to adjust.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "set-policy",
        json!({"region": "420100", "insurance_type": "employee_medical", "effective_from": "2022-01",
               "standard_base": "6046.00", "floor": "3000.00", "cap": "18138.00",
               "employer_rate": "0.08", "employee_rate": "0.02", "flexible_rate": "0.06",
               "deadline": {"kind": "last_working_days", "n": 5}, "deadline_month": "same_month",
               "reason": "republished"}),
    )
    .await;
    assert_eq!(
        (r["bases_rederived"].as_i64(), r["months_reassessed"].as_i64()),
        (Some(0), Some(1)),
        "{r}"
    );
    app.stop().await;
}

#[tokio::test]
async fn jinan_moved_its_deadline_to_the_month_end_from_february_2020() {
    let env = TestEnv::new();
    let app = common::spawn_in(&env, "370100").await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.contribution-assessed").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (employer, ids) = employer_with_staff(&client, 82, 1, "2020-01").await;
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 1).then_some(())
    })
    .await;
    ok(
        &client,
        Line::Medical,
        C,
        "declare-wages",
        json!({"employer_credit_code": employer, "year": 2020,
               "wages": [{"id_number": ids[0], "previous_year_average": "5000.00"}]}),
    )
    .await;
    for (month, due) in [("2020-01", "2020-01-15"), ("2020-02", "2020-02-29")] {
        ok(&client, Line::Medical, C, "assess-month", json!({"month": month})).await;
        let ev = tap.expect("medical.collection.contribution-assessed").await.body;
        assert_eq!(ev["deadline"], due, "Jinan {month}");
    }
    app.stop().await;
}

#[tokio::test]
async fn hangzhou_collects_in_the_next_month_and_moved_july_2020_for_employers() {
    let env = TestEnv::new();
    let app = common::spawn_in(&env, "330100").await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.contribution-assessed").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (employer, ids) = employer_with_staff(&client, 83, 1, "2020-01").await;
    let flexible = id_number(8399);
    flexible_worker(&client, &cdb, &flexible, "2020-01", 2).await;
    ok(
        &client,
        Line::Medical,
        C,
        "declare-wages",
        json!({"employer_credit_code": employer, "year": 2020,
               "wages": [{"id_number": ids[0], "previous_year_average": "5000.00"}]}),
    )
    .await;
    let flexible_id = person_id(&cdb, &flexible).await;
    for (month, employer_due, person_due) in [
        ("2020-06", "2020-07-15", "2020-07-15"),
        // The declaration window for employer payers moved to 08-01 … 08-25.
        ("2020-07", "2020-08-25", "2020-08-15"),
    ] {
        ok(&client, Line::Medical, C, "assess-month", json!({"month": month})).await;
        // July also puts the 2020 base in use: June's settle-up for the flexible worker (on
        // the standard base) comes first, as an adjustment of June keeping June's deadline.
        let n = if month == "2020-07" { 3 } else { 2 };
        for ev in tap.expect_n("medical.collection.contribution-assessed", n).await {
            if ev.body["month"] != month {
                assert_eq!(
                    (
                        ev.body["month"].as_str(),
                        ev.body["kind"].as_str(),
                        ev.body["deadline"].as_str()
                    ),
                    (Some("2020-06"), Some("adjustment"), Some("2020-07-15")),
                    "{}",
                    ev.body
                );
                continue;
            }
            let expected = if ev.body["payer_id"] == flexible_id.as_str() {
                person_due
            } else {
                employer_due
            };
            assert_eq!(ev.body["deadline"], expected, "Hangzhou {month}: {}", ev.body);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn resident_medical_is_a_yearly_premium_due_in_its_collection_period() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.*").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    // One resident covered from January (enrolled in the collection period before 2022),
    // one who enrols during the year, from March.
    let (january, march) = (id_number(401), id_number(402));
    for (id, from) in [(&january, "2022-01"), (&march, "2022-03")] {
        ok(
            &client,
            Line::Medical,
            E,
            "enroll-person",
            json!({"id_number": id, "name": "居民", "phone": "13800000000", "category": "resident",
                   "insurance_types": ["resident_medical"], "effective_month": from}),
        )
        .await;
    }
    wait_for("projection", WAIT, || async {
        (count(&cdb, "select count(*) from coverage").await == 2).then_some(())
    })
    .await;
    let p = ok(
        &client,
        Line::Medical,
        C,
        "get-policy",
        json!({"region": "420100", "insurance_type": "resident_medical", "month": "2022-01"}),
    )
    .await;
    // PLACEHOLDER figures (DOMAIN.md gives none): 380.00 a year, September to December.
    assert_eq!(
        (
            p["rule"]["yearly_premium"].as_str(),
            &p["rule"]["collection_period"]
        ),
        (Some("380.00"), &json!({"opens": "09-01", "closes": "12-31"})),
        "{p}"
    );
    let (january_id, march_id) = (person_id(&cdb, &january).await, person_id(&cdb, &march).await);

    // January: the year's premium, once, due by the close of the collection period.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2022-01"}),
    )
    .await;
    assert_eq!(
        (r["total_change"].as_str(), r["skipped"].as_i64()),
        (Some("380.00"), Some(0)),
        "{r}"
    );
    let ev = tap.expect("medical.collection.contribution-assessed").await.body;
    assert_eq!(ev["payer_id"], january_id.as_str());
    assert_eq!(
        ev["deadline"], "2021-12-31",
        "the collection period's close: {ev}"
    );
    assert_eq!(
        ev["lines"],
        json!([{"insurance_type": "resident_medical", "share": "person", "persons": 1, "amount": "380.00"}])
    );
    // February: nothing (no monthly rate); March: only the resident enrolled in March, due
    // as a person enrolling during the year pays (Wuhan: before the last 5 working days).
    let r = ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2022-02"}),
    )
    .await;
    assert_eq!(
        (r["total_change"].as_str(), r["payers_assessed"].as_i64()),
        (Some("0.00"), Some(0)),
        "{r}"
    );
    let r = ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2022-03"}),
    )
    .await;
    assert_eq!(r["total_change"], "380.00", "{r}");
    let ev = tap.expect("medical.collection.contribution-assessed").await.body;
    assert_eq!(
        (
            ev["payer_id"].as_str(),
            ev["deadline"].as_str(),
            ev["amount"].as_str()
        ),
        (Some(march_id.as_str()), Some("2022-03-24"), Some("380.00")),
        "{ev}"
    );
    let h = ok(
        &client,
        Line::Medical,
        C,
        "contribution-history",
        json!({"id_number": january}),
    )
    .await;
    let months = h["months"].as_array().unwrap();
    assert_eq!(months.len(), 1, "one premium a year: {h}");
    assert_eq!(
        (months[0]["month"].as_str(), months[0]["own_share"].as_str()),
        (Some("2022-01"), Some("380.00"))
    );
    // Unpaid after the period closed (and the 5 working days a payment takes): in arrears,
    // benefits affected from Wuhan's 2022-04-01. March's premium is not due yet.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "detect-arrears",
        json!({"as_of": "2022-03-01"}),
    )
    .await;
    assert_eq!(r["newly_in_arrears"], 1, "{r}");
    let arrears = tap.expect("medical.collection.arrears-detected").await.body;
    assert_eq!(
        (
            arrears["payer_id"].as_str(),
            arrears["deadline"].as_str(),
            arrears["benefits_affected_from"].as_str()
        ),
        (Some(january_id.as_str()), Some("2021-12-31"), Some("2022-04-01")),
        "{arrears}"
    );
    app.stop().await;
}

#[tokio::test]
async fn hangzhou_2020_base_is_in_use_from_july_and_january_to_june_are_settled_up() {
    let env = TestEnv::new();
    let app = common::spawn_in(&env, "330100").await;
    let client = env.client().await;
    let mut tap = env.tap("medical.collection.*").await;
    let cdb = env.pool("collection").await.get().await.unwrap();
    let (employer, ids) = employer_with_staff(&client, 84, 2, "2020-01").await;
    let flexible = id_number(8499);
    flexible_worker(&client, &cdb, &flexible, "2020-01", 3).await;
    let p = ok(
        &client,
        Line::Medical,
        C,
        "get-policy",
        json!({"region": "330100", "insurance_type": "employee_medical", "month": "2020-03"}),
    )
    .await;
    assert_eq!(
        (
            p["rule"]["in_use_from"].as_str(),
            p["rule"]["floor"].as_str(),
            p["rule"]["cap"].as_str()
        ),
        (Some("2020-07"), Some("3321.60"), Some("17880.75")),
        "the 2020 rule as published: {p}"
    );
    // Declared before July: the bases are determined on the 2019 figures (floor 3321.60 from
    // DOMAIN.md; cap 16608.00 a PLACEHOLDER).
    let r = ok(
        &client,
        Line::Medical,
        C,
        "declare-wages",
        json!({"employer_credit_code": employer, "year": 2020,
               "wages": [{"id_number": ids[0], "previous_year_average": "20000.00"},
                         {"id_number": ids[1], "previous_year_average": "3000.00"}]}),
    )
    .await;
    let bases: Vec<(&str, &str)> = r["bases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["base"].as_str().unwrap(), b["clamp"].as_str().unwrap()))
        .collect();
    assert_eq!(
        bases,
        vec![("16608.00", "lowered-to-cap"), ("3321.60", "raised-to-floor")]
    );
    tap.expect_n("medical.collection.base-determined", 2).await;
    let flexible_id = person_id(&cdb, &flexible).await;

    // January-June on the 2019 figures. Employer: 8 % of 16608.00 + 3321.60 = 1594.37, own
    // 2 % 332.16 + 66.43: 1992.96. Flexible: 6 % of the 2019 standard 5536.00 = 332.16.
    let mut initial_deadline = std::collections::BTreeMap::new();
    let mut january = String::new();
    for m in 1..=6 {
        let month = format!("2020-{m:02}");
        let r = ok(&client, Line::Medical, C, "assess-month", json!({"month": month})).await;
        assert_eq!(r["total_change"], "2325.12", "{month}: {r}");
        for ev in tap.expect_n("medical.collection.contribution-assessed", 2).await {
            let expected = if ev.body["payer_id"] == flexible_id.as_str() {
                "332.16"
            } else {
                if m == 1 {
                    january = ev.body["assessment_id"].as_str().unwrap().to_owned();
                }
                initial_deadline.insert(month.clone(), ev.body["deadline"].clone());
                "1992.96"
            };
            assert_eq!(ev.body["amount"], expected, "{month}: {}", ev.body);
        }
    }
    // The employer pays January in full, on time.
    ok(
        &client,
        Line::Medical,
        C,
        "record-payment",
        json!({"assessment_id": january, "amount": "1992.96",
               "paid_at": "2020-02-10T10:00:00+08:00", "tax_receipt_no": "HZ-2020-01"}),
    )
    .await;
    // payment-recorded and contribution-settled.
    assert_eq!(tap.collect(2, WAIT).await.len(), 2);

    // July: the 2020 base comes into use. The first employee's base goes from the 2019 cap to
    // 17880.75, the second stays at the floor 3321.60; January-June are re-assessed.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2020-07"}),
    )
    .await;
    assert_eq!(
        (
            r["rules_brought_into_use"].as_i64(),
            r["bases_rederived"].as_i64(),
            r["months_reassessed"].as_i64()
        ),
        (Some(1), Some(1), Some(6)),
        "{r}"
    );
    // July on the 2020 figures: employer 8 % of 17880.75 + 3321.60 = 1696.19, own 357.62 +
    // 66.43: 2120.24; flexible 6 % of 5960.25 = 357.62.
    assert_eq!(r["total_change"], "2477.86", "{r}");
    // One re-derived base, 12 adjustments (employer and flexible worker, January-June) and
    // July's two assessments, in whatever order the outbox publishes them.
    let all = tap.collect(15, WAIT).await;
    let keyed =
        |key: &str| -> Vec<testkit::Event> { all.iter().filter(|e| e.routing_key == key).cloned().collect() };
    let rederived = keyed("medical.collection.base-determined");
    assert_eq!(rederived.len(), 1, "{all:?}");
    let base = &rederived[0].body;
    assert_eq!(
        (
            base["id_number"].as_str(),
            base["bases"][0]["base"].as_str(),
            base["bases"][0]["clamp"].as_str()
        ),
        (Some(ids[0].as_str()), Some("17880.75"), Some("lowered-to-cap")),
        "{base}"
    );
    let events = keyed("medical.collection.contribution-assessed");
    assert_eq!(events.len(), 14, "{all:?}");
    for m in 1..=6 {
        let month = format!("2020-{m:02}");
        let of = |flexible: bool| {
            events
                .iter()
                .map(|e| &e.body)
                .find(|b| b["month"] == month.as_str() && (b["payer_id"] == flexible_id.as_str()) == flexible)
                .unwrap_or_else(|| panic!("no adjustment of {month}"))
        };
        let adj = of(false);
        // 多退少补: +101.82 employer (1696.19 - 1594.37), +25.46 own (357.62 - 332.16).
        assert_eq!(
            (
                adj["kind"].as_str(),
                adj["amount"].as_str(),
                adj["total_due"].as_str()
            ),
            (Some("adjustment"), Some("127.28"), Some("2120.24")),
            "{month}: {adj}"
        );
        assert_eq!(
            adj["lines"],
            json!([
                {"insurance_type": "employee_medical", "share": "employee", "persons": 1, "amount": "25.46"},
                {"insurance_type": "employee_medical", "share": "employer", "persons": 1, "amount": "101.82"}
            ]),
            "only the employee whose base changed: {month}"
        );
        // January was paid in full: its difference is due with July's declaration (08-25);
        // the unpaid months keep their own deadlines.
        let due = if m == 1 {
            json!("2020-08-25")
        } else {
            initial_deadline[&month].clone()
        };
        assert_eq!(adj["deadline"], due, "{month}: {adj}");
        let flex = of(true);
        assert_eq!(
            (
                flex["kind"].as_str(),
                flex["amount"].as_str(),
                flex["total_due"].as_str()
            ),
            (Some("adjustment"), Some("25.46"), Some("357.62")),
            "{month}: {flex}"
        );
    }
    let july: Vec<_> = events
        .iter()
        .map(|e| &e.body)
        .filter(|b| b["month"] == "2020-07")
        .collect();
    assert_eq!(july.len(), 2);
    for b in july {
        assert_eq!(b["kind"], "initial");
        let expected = if b["payer_id"] == flexible_id.as_str() {
            "357.62"
        } else {
            "2120.24"
        };
        assert_eq!(b["amount"], expected, "{b}");
    }
    // January's statement: the difference outstanding, due 08-25; each person's base as it
    // is now and the employer's share on their sum.
    let st = ok(
        &client,
        Line::Medical,
        C,
        "employer-statement",
        json!({"employer_credit_code": employer, "month": "2020-01"}),
    )
    .await;
    assert_eq!(
        (
            st["assessment"]["due"].as_str(),
            st["assessment"]["paid"].as_str(),
            st["assessment"]["outstanding"].as_str(),
            st["assessment"]["status"].as_str(),
            st["assessment"]["deadline"].as_str()
        ),
        (
            Some("2120.24"),
            Some("1992.96"),
            Some("127.28"),
            Some("partially-paid"),
            Some("2020-08-25")
        ),
        "{st}"
    );
    assert_eq!(
        st["employer_shares"],
        json!([{"insurance_type": "employee_medical", "base": "21202.35", "amount": "1696.19", "rounding": "0.00"}])
    );
    // Once in use, it stays in use: July again writes nothing and re-assesses nothing.
    let r = ok(
        &client,
        Line::Medical,
        C,
        "assess-month",
        json!({"month": "2020-07"}),
    )
    .await;
    assert_eq!(
        (
            r["total_change"].as_str(),
            r["rules_brought_into_use"].as_i64(),
            r["months_reassessed"].as_i64()
        ),
        (Some("0.00"), Some(0), Some(0)),
        "{r}"
    );
    app.stop().await;
}

//! Spawns enrollment, collection and benefits in process against the test environment, and
//! drives a person through the real enrollment → assessment → payment path.
#![allow(dead_code)]

use contracts::ErrorCode;
use contracts::{Line, Reply};
use messaging::client::CommandClient;
use serde_json::{Value, json};
use testkit::services::Services;
use testkit::{TestEnv, WAIT, send, wait_for};

pub const E: &str = "enrollment";
pub const C: &str = "collection";
pub const B: &str = "benefits";
/// Seeded designated institutions (placeholders): levels 3, 2, 1.
pub const H3: &str = "H42010000001";
pub const H2: &str = "H42010000002";

pub async fn spawn(env: &TestEnv) -> Services {
    spawn_in(env, "420100").await
}

/// As [`spawn`], with enrollment and collection of `region` (collection's policy rules apply).
pub async fn spawn_in(env: &TestEnv, region: &str) -> Services {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings(E),
        region: region.into(),
    })
    .await
    .expect("enrollment builds");
    let collection = collection::build(collection::Settings {
        service: env.service_settings(C),
        region: region.into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .expect("collection builds");
    let benefits = benefits::build(benefits::Settings {
        service: env.service_settings(B),
    })
    .await
    .expect("benefits builds");
    let mut s = Services::new();
    s.start(env, enrollment)
        .start(env, collection)
        .start(env, benefits);
    s
}

pub async fn cmd(client: &CommandClient, service: &str, name: &str, body: Value) -> Reply {
    send(client, Line::Medical, service, name, body).await
}

/// The `ok` result of a benefits command, or a panic naming the rejection.
pub async fn ok(client: &CommandClient, name: &str, body: Value) -> Value {
    let r = cmd(client, B, name, body).await;
    assert!(r.is_ok(), "{name}: {r:?}");
    r.result.expect("a result")
}

pub async fn register_employer(client: &CommandClient, code: &str) {
    let r = cmd(
        client,
        E,
        "register-employer",
        json!({"credit_code": code, "name": "武汉某公司", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

/// Enrolls a person in employee medical (and `extra` types) from `month`; returns the psn_no.
pub async fn enroll(
    client: &CommandClient,
    id_number: &str,
    category: &str,
    employer: Option<&str>,
    month: &str,
    types: Value,
) -> String {
    let mut body = json!({"id_number": id_number, "name": "参保人", "phone": "13800000000", "category": category,
                          "insurance_types": types, "effective_month": month});
    if let Some(code) = employer {
        body["employer_credit_code"] = json!(code);
    }
    let r = cmd(client, E, "enroll-person", body).await;
    assert!(r.is_ok(), "{r:?}");
    r.result.unwrap()["person_id"].as_str().unwrap().to_owned()
}

pub async fn declare_wage(client: &CommandClient, employer: &str, id_number: &str, wage: &str) {
    declare_wage_in(client, employer, id_number, wage, 2024).await
}

/// The wage declared for the contribution year `year`.
pub async fn declare_wage_in(client: &CommandClient, employer: &str, id_number: &str, wage: &str, year: i32) {
    let r = cmd(
        client,
        C,
        "declare-wages",
        json!({"employer_credit_code": employer, "year": year,
               "wages": [{"id_number": id_number, "previous_year_average": wage}]}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

pub async fn assess(client: &CommandClient, month: &str) {
    let r = cmd(client, C, "assess-month", json!({"month": month})).await;
    assert!(r.is_ok(), "{r:?}");
}

/// The assessment of `payer` for `month` and its amount due, as collection holds it.
pub async fn assessment(env: &TestEnv, payer: &str, month: &str) -> (String, String) {
    let db = env.pool(C).await.get().await.unwrap();
    let first = format!("{month}-01");
    let r = db
        .query_one(
            "select assessment_id::text, due::text from assessments where payer_id = $1 and month = $2::text::date",
            &[&payer, &first],
        )
        .await
        .unwrap_or_else(|e| panic!("no assessment of {payer} for {month}: {e}"));
    (r.get(0), r.get(1))
}

/// Pays `payer`'s whole assessment for `month`, made at `paid_at`.
pub async fn pay(client: &CommandClient, env: &TestEnv, payer: &str, month: &str, paid_at: &str) {
    let (id, due) = assessment(env, payer, month).await;
    let r = cmd(
        client,
        C,
        "record-payment",
        json!({"assessment_id": id, "amount": due, "paid_at": paid_at,
               "tax_receipt_no": format!("T-{payer}-{month}")}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

pub async fn count(env: &TestEnv, service: &str, sql: &str) -> i64 {
    let db = env.pool(service).await.get().await.unwrap();
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits until collection has projected `n` coverage rows (enrollment events arrived).
pub async fn collection_sees(env: &TestEnv, n: i64) {
    wait_for("collection's projection of the enrollments", WAIT, || async {
        (count(env, C, "select count(*) from coverage").await >= n).then_some(())
    })
    .await;
}

/// Waits until benefits knows `psn_no` paid `month` (employee medical).
pub async fn benefits_paid(env: &TestEnv, psn_no: &str, month: &str) {
    let sql = format!(
        "select count(*) from paid_months where person_id = '{psn_no}' and month = '{month}-01' \
         and insurance_type = 'employee_medical'"
    );
    wait_for(&format!("benefits to see {month} paid"), WAIT, || async {
        (count(env, B, &sql).await == 1).then_some(())
    })
    .await;
}

/// Eligibility per month over `from`..=`to`: `(month, eligible, reason)`.
pub async fn months(
    client: &CommandClient,
    psn_no: &str,
    from: &str,
    to: &str,
) -> Vec<(String, bool, String)> {
    let r = ok(
        client,
        "eligibility",
        json!({"psn_no": psn_no, "insutype": "310", "from": from, "to": to}),
    )
    .await;
    r["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_owned(),
                m["eligible"].as_bool().unwrap(),
                m["not_eligible_reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Employees of a new employer, enrolled from 2024-03 with a 5000.00 base each, March paid
/// on 2024-03-20 through collection: covered from April, with 100.00 (the 2 %) on each
/// personal account. Returns their psn_no.
pub async fn covered_staff(
    client: &CommandClient,
    env: &TestEnv,
    employer: &str,
    ids: &[String],
) -> Vec<String> {
    covered_staff_from(client, env, employer, ids, "2024-03", "2024-03-20T10:00:00+08:00").await
}

/// As [`covered_staff`], enrolled from `month` and that month paid at `paid_at`: covered
/// from the month after.
pub async fn covered_staff_from(
    client: &CommandClient,
    env: &TestEnv,
    employer: &str,
    ids: &[String],
    month: &str,
    paid_at: &str,
) -> Vec<String> {
    register_employer(client, employer).await;
    let mut psns = Vec::new();
    for id in ids {
        psns.push(
            enroll(
                client,
                id,
                "employee",
                Some(employer),
                month,
                json!(["employee_medical"]),
            )
            .await,
        );
    }
    collection_sees(env, ids.len() as i64).await;
    let year: i32 = month[..4].parse().expect("a yyyy-MM month");
    for id in ids {
        declare_wage_in(client, employer, id, "5000.00", year).await;
    }
    assess(client, month).await;
    pay(client, env, employer, month, paid_at).await;
    for p in &psns {
        benefits_paid(env, p, month).await;
    }
    psns
}

/// Registers (2201) or admits (2401) `who` (psn_no, ID number).
pub async fn visit(
    client: &CommandClient,
    name: &str,
    msgid: &str,
    inst: &str,
    who: (&str, &str),
    begn: &str,
    self_pay: bool,
) -> Value {
    ok(
        client,
        name,
        json!({"msgid": msgid, "fixmedins_code": inst, "psn_no": who.0, "insutype": "310",
               "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "ipt_otp_no": format!("N-{msgid}"),
               "begntime": begn, "self_pay": self_pay}),
    )
    .await
}

pub fn fee(sn: &str, code: &str, cnt: &str, pric: &str, amount: &str) -> Value {
    json!({"feedetl_sn": sn, "med_list_codg": code, "cnt": cnt, "pric": pric,
           "det_item_fee_sumamt": amount, "fee_ocur_time": "2024-05-10 09:30:00"})
}

pub async fn upload(client: &CommandClient, mdtrt: &str, psn: &str, lines: Vec<Value>) -> Value {
    ok(
        client,
        "upload-fees",
        json!({"mdtrt_id": mdtrt, "psn_no": psn, "feedetail": lines}),
    )
    .await
}

pub fn split_of(r: &Value) -> [&str; 9] {
    [
        "medfee_sumamt",
        "inscp_scp_amt",
        "act_pay_dedc",
        "hifp_pay",
        "hifob_pay",
        "fund_pay_sumamt",
        "acct_pay",
        "acct_mulaid_pay",
        "psn_cash_pay",
    ]
    .map(|k| r[k].as_str().unwrap_or_else(|| panic!("no {k} in {r}")))
}

pub async fn code(
    client: &CommandClient,
    name: &str,
    body: Value,
) -> (Option<ErrorCode>, Option<String>, String) {
    let r = cmd(client, B, name, body).await;
    let e = r
        .error
        .clone()
        .unwrap_or_else(|| panic!("{name} was not rejected: {r:?}"));
    (Some(e.code), e.field, e.message)
}

/// The first event with `routing_key` whose body matches, skipping others.
pub async fn event_where(
    tap: &mut testkit::EventTap,
    routing_key: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let e = tap.expect(routing_key).await;
        if matches(&e.body) {
            return e.body;
        }
    }
}

/// Benefits alone, on a drill clock that starts at `at` (China time) and runs at wall speed.
pub async fn benefits_at(env: &TestEnv, at: &str) -> Services {
    let mut s = env.service_settings(B);
    s.messaging.freeze.clock = messaging::freeze::ClockSettings {
        drill_origin: Some(at.parse().expect("an RFC 3339 time")),
        drill_wall_start: None,
        drill_speed: Some(1.0),
    };
    s.messaging.freeze.tick_ms = 50;
    let app = benefits::build(benefits::Settings { service: s })
        .await
        .expect("benefits builds");
    let mut services = Services::new();
    services.start(env, app);
    services
}

//! Social-line benefits (issue 10 §5) through the broker: retirement approval and rejection
//! with the figures (contribution months carried over by a transfer certificate and paid
//! here through collection), the pension run paid by the simulated bank with control totals,
//! a failed item reported and owed again, the run during the Wuhan social-business freeze,
//! Wuhan's back-pay for a retirement missed in the stop, and Hangzhou's July 2020 rule.
//! Figures are the seed's placeholder policy: average wage 7000.00, index 1, 1 % a year,
//! 15 years minimum, 计发月数 139 at 60 and 195 at 50.

mod common;

use common::*;
use contracts::freeze::{ControlMessage, FreezeOrder, Timetable};
use contracts::{ErrorCode, Line, Reply, ReplyStatus};
use messaging::client::CommandClient;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use testkit::{TestEnv, WAIT, send, wait_for};

use testkit::id_born as id_of;

async fn social(client: &CommandClient, service: &str, name: &str, body: Value) -> Reply {
    send(client, Line::Social, service, name, body).await
}

async fn sok(client: &CommandClient, name: &str, body: Value) -> Value {
    let r = social(client, B, name, body).await;
    assert!(r.is_ok(), "{name}: {r:?}");
    r.result.expect("a result")
}

async fn srejected(client: &CommandClient, name: &str, body: Value) -> (ErrorCode, String, String) {
    let r = social(client, B, name, body).await;
    let e = r.error.unwrap_or_else(|| panic!("{name} was not rejected"));
    (e.code, e.field.unwrap_or_default(), e.message)
}

/// Transfers `id` in on the social line (pension) as a flexible worker from `month`, with
/// `months` and `balance` carried over; waits until benefits knows the person.
async fn transfer_in(
    env: &TestEnv,
    client: &CommandClient,
    id: &str,
    month: &str,
    months: u32,
    balance: &str,
) -> String {
    let r = social(
        client,
        E,
        "transfer-in",
        json!({"certificate": {"certificate_id": uuid::Uuid::now_v7().to_string(), "id_number": id, "name": "退休人",
                "insurance_types": ["pension"], "from_region": "370100", "to_region": "420100",
                "contribution_history_ref": "jinan/history", "issued_at": "2020-01-05T09:00:00+08:00",
                "contribution_months": months, "pension_account_balance": balance},
               "phone": "13800000000", "category": "flexible", "effective_month": month}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let psn = r.result.unwrap()["person_id"].as_str().unwrap().to_owned();
    let sql = format!("select count(*) from carried_contributions where person_id = '{psn}'");
    wait_for("benefits to see the transfer", WAIT, || async {
        (count(env, B, &sql).await == 1).then_some(())
    })
    .await;
    psn
}

fn apply(id: &str, position: &str, applied_at: &str) -> Value {
    json!({"id_number": id, "position": position, "applied_at": applied_at})
}

async fn approve(client: &CommandClient, application: &Value) -> Value {
    sok(
        client,
        "review-retirement",
        json!({"application_id": application["application_id"], "action": "approve", "reviewer": "审核员张"}),
    )
    .await
}

fn order(id: &str) -> FreezeOrder {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../cutovers/wuhan-2021.yaml"
    ))
    .expect("the Wuhan timetable");
    Timetable::from_yaml(&text)
        .expect("it loads")
        .orders
        .into_iter()
        .find(|o| o.id == id)
        .expect("the order")
}

async fn send_order(env: &TestEnv, o: FreezeOrder) {
    let id = o.id.clone();
    testkit::services::broadcast_control(env, &ControlMessage::Order { order: Box::new(o) }).await;
    let sql = format!("select count(*) from freeze_orders where id = '{id}'");
    for s in [E, C, B] {
        wait_for("the order stored", WAIT, || async {
            (count(env, s, &sql).await == 1).then_some(())
        })
        .await;
    }
}

async fn card(env: &TestEnv, id: &str, state: &str) {
    let db = env.pool(B).await.get().await.unwrap();
    db.execute(
        "insert into card_status (id_number, application_id, state, in_production, step)
         values ($1, 'app-1', $2, false, 'activated')
         on conflict (id_number) do update set state = excluded.state",
        &[&id, &state],
    )
    .await
    .unwrap();
}

fn bank_cfg(env: &TestEnv) -> bank_sim::SimConfig {
    bank_sim::SimConfig {
        amqp_url: testkit::amqp_url(),
        prefix: env.prefix(),
        seed: 1,
        fail_account: 0.0,
        fail_production: 0.0,
        delay: std::time::Duration::from_millis(20),
        branch: "工商银行江汉支行".into(),
    }
}

/// Nothing left behind: benefits' outbox drained, nothing parked on its social-line queues.
async fn nothing_stuck(env: &TestEnv) {
    wait_for("benefits' outbox drained", WAIT, || async {
        (count(env, B, "select count(*) from outbox where published_at is null").await == 0).then_some(())
    })
    .await;
    let broker = env.broker();
    let names = env.names();
    for q in [
        names.command_queue(B, Line::Social),
        names.event_queue(B, Line::Social),
    ] {
        let parked = messaging::parking::depth(&broker, &messaging::Names::parking(&q))
            .await
            .unwrap();
        assert_eq!(parked, 0, "nothing parked from {q}");
    }
    broker.close().await;
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn retirement_is_judged_with_its_figures_and_the_pension_run_is_paid_during_the_wuhan_social_freeze() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("social.#").await;
    // The bank's queue exists from the start; the simulator consumes it later.
    let queue = env.names().subscriber_queue(bank_sim::SUBSCRIBER);
    env.track_queues([queue.clone()]);
    let broker = env.broker();
    let ch = broker.channel().await.unwrap();
    bank_sim::declare(&ch, &env.names(), WAIT).await.unwrap();

    // Ann turns 60 on 2024-03-10: 190 months and 60000.00 carried over from Jinan, and
    // February 2024 paid here through collection.
    let ann = id_of("1964-03-10", 1, true);
    let ann_psn = transfer_in(&env, &client, &ann, "2024-02", 190, "60000.00").await;
    wait_for("collection's projection", WAIT, || async {
        (count(&env, C, "select count(*) from coverage").await >= 1).then_some(())
    })
    .await;
    let r = social(&client, C, "assess-month", json!({"month": "2024-02"})).await;
    assert!(r.is_ok(), "{r:?}");
    let (assessment, due) = assessment(&env, &ann_psn, "2024-02").await;
    let r = social(
        &client,
        C,
        "record-payment",
        json!({"assessment_id": assessment, "amount": due, "paid_at": "2024-02-20T10:00:00+08:00",
               "tax_receipt_no": "T-ANN-2024-02"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let settled = event_where(&mut tap, "social.collection.contribution-settled", |b| {
        b["payer_id"] == ann_psn.as_str()
    })
    .await;
    let paid: Decimal = settled["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["insurance_type"] == "pension" && i["share"] == "person")
        .map(|i| d(i["amount"].as_str().unwrap()))
        .sum();
    assert!(paid > Decimal::ZERO, "{settled}");
    let sql = format!("select count(*) from contribution_months where person_id = '{ann_psn}'");
    wait_for("benefits to see February paid", WAIT, || async {
        (count(&env, B, &sql).await == 1).then_some(())
    })
    .await;

    // Bad input: a specific error, nothing stored.
    for (body, code, field) in [
        (
            apply(&ann, "boss", "2024-03-01T10:00:00+08:00"),
            ErrorCode::InvalidField,
            "position",
        ),
        (
            apply("4201021964031", "worker", "2024-03-01T10:00:00+08:00"),
            ErrorCode::InvalidField,
            "id_number",
        ),
        (
            apply(&ann, "worker", "2999-01-01T10:00:00+08:00"),
            ErrorCode::InvalidField,
            "applied_at",
        ),
        (
            apply(&ann, "worker", "yesterday"),
            ErrorCode::InvalidField,
            "applied_at",
        ),
        (
            apply(
                &id_of("1964-01-01", 9, true),
                "worker",
                "2024-03-01T10:00:00+08:00",
            ),
            ErrorCode::NotFound,
            "id_number",
        ),
    ] {
        let (c, f, m) = srejected(&client, "apply-retirement", body).await;
        assert_eq!((c, f.as_str()), (code, field), "{m}");
    }
    assert_eq!(
        count(&env, B, "select count(*) from retirement_applications").await,
        0
    );

    // Approved: 191 months; 7000.00 × 191 / 12 × 1 % = 1114.17; (60000.00 + 40 % of the
    // person's pension contribution) / 139.
    let a = sok(
        &client,
        "apply-retirement",
        apply(&ann, "worker", "2024-03-01T10:00:00+08:00"),
    )
    .await;
    assert_eq!(
        (&a["status"], &a["retirement_age"], &a["reaches_age_on"]),
        (&json!("applied"), &json!(60), &json!("2024-03-10"))
    );
    let (c, f, _) = srejected(
        &client,
        "apply-retirement",
        apply(&ann, "worker", "2024-03-02T10:00:00+08:00"),
    )
    .await;
    assert_eq!((c, f.as_str()), (ErrorCode::Conflict, "id_number"));
    let approved = approve(&client, &a).await;
    let balance = d("60000.00") + (paid * d("0.4")).round_dp(2);
    let account =
        (balance / d("139")).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let p = &approved["pension"];
    assert_eq!(
        (
            &approved["status"],
            &p["contribution_months"],
            &p["basic_pension"],
            &p["account_balance"],
            &p["divisor_months"]
        ),
        (
            &json!("approved"),
            &json!(191),
            &json!("1114.17"),
            &json!(format!("{balance:.2}")),
            &json!(139)
        ),
        "{approved}"
    );
    assert_eq!(p["account_pension"], json!(format!("{account:.2}")));
    let monthly = d("1114.17") + account;
    assert_eq!(p["monthly_pension"], json!(format!("{monthly:.2}")));
    assert_eq!(
        (&approved["from_month"], &approved["start_rule"]),
        (&json!("2024-04"), &json!("in-time"))
    );
    let ev = event_where(&mut tap, "social.benefits.retirement-approved", |b| {
        b["id_number"] == ann.as_str()
    })
    .await;
    assert_eq!(ev["pension"]["monthly_pension"], p["monthly_pension"]);
    let (c, f, _) = srejected(
        &client,
        "review-retirement",
        json!({"application_id": a["application_id"], "action": "approve", "reviewer": "审核员张"}),
    )
    .await;
    assert_eq!((c, f.as_str()), (ErrorCode::Conflict, "application_id"));

    // Rejected on the rules, with the reason: under age; too few years.
    let young = id_of("1980-05-01", 2, false);
    transfer_in(&env, &client, &young, "2024-02", 200, "0").await;
    let y = sok(
        &client,
        "apply-retirement",
        apply(&young, "worker", "2024-03-01T10:00:00+08:00"),
    )
    .await;
    let y = approve(&client, &y).await;
    assert_eq!(
        (&y["status"], &y["reason_code"], &y["retirement_age"]),
        (&json!("rejected"), &json!("under-age"), &json!(50)),
        "{y}"
    );
    assert!(y["reason"].as_str().unwrap().contains("2030-05-01"), "{y}");
    let short = id_of("1960-01-15", 3, true);
    transfer_in(&env, &client, &short, "2024-02", 150, "0").await;
    let s = sok(
        &client,
        "apply-retirement",
        apply(&short, "worker", "2024-03-01T10:00:00+08:00"),
    )
    .await;
    let s = approve(&client, &s).await;
    assert_eq!(
        (&s["status"], &s["reason_code"], &s["contribution_months"]),
        (
            &json!("rejected"),
            &json!("insufficient-contribution-years"),
            &json!(150)
        ),
        "{s}"
    );
    assert!(s["reason"].as_str().unwrap().contains("12年6个月"), "{s}");
    event_where(&mut tap, "social.benefits.retirement-rejected", |b| {
        b["id_number"] == short.as_str()
    })
    .await;

    // Dan (no card account) retired in 2023: 200 months, from 2023-06.
    let dan = id_of("1963-05-02", 4, true);
    transfer_in(&env, &client, &dan, "2024-02", 200, "0").await;
    let dn = sok(
        &client,
        "apply-retirement",
        apply(&dan, "cadre", "2023-05-02T10:00:00+08:00"),
    )
    .await;
    let dn = approve(&client, &dn).await;
    assert_eq!(
        (&dn["pension"]["monthly_pension"], &dn["from_month"]),
        (&json!("1166.67"), &json!("2023-06")),
        "{dn}"
    );
    card(&env, &ann, "activated").await;

    // The Wuhan social-business order is in force (started 2021-12-15, no end): enrollment on
    // the social line is suspended, the pension run is not.
    send_order(&env, order("wuhan-2021-social-business")).await;
    let r = social(&client, E, "enroll-person", json!({"id_number": id_of("1990-01-01", 5, true), "name": "新参保",
        "phone": "13800000000", "category": "flexible", "insurance_types": ["pension"], "effective_month": "2024-06"})).await;
    assert_eq!(r.status, ReplyStatus::Suspended, "{r:?}");

    let run = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-06", "kind": "pension"}),
    )
    .await;
    let dan_total = d("1166.67") * d("13");
    let total = monthly * d("3") + dan_total;
    assert_eq!(
        (&run["status"], &run["item_count"], &run["total"]),
        (&json!("ordered"), &json!(2), &json!(format!("{total:.2}"))),
        "{run}"
    );
    let again = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-06", "kind": "pension"}),
    )
    .await;
    assert_eq!(again, run, "a repeated run gives the same batch");
    let ordered = event_where(&mut tap, "social.benefits.benefit-payment-batch-ordered", |_| {
        true
    })
    .await;
    assert_eq!(
        (&ordered["item_count"], &ordered["total"]),
        (&run["item_count"], &run["total"])
    );
    let items = ordered["items"].as_array().unwrap();
    let dan_item = items.iter().find(|i| i["id_number"] == dan.as_str()).unwrap();
    assert_eq!(
        dan_item["months"].as_array().unwrap().len(),
        13,
        "back months 2023-06 … 2024-06"
    );

    // Results with the wrong control totals change nothing.
    let results: Vec<Value> = items
        .iter()
        .map(|i| json!({"item_id": i["item_id"], "outcome": "paid", "amount": i["amount"], "bank_ref": "X"}))
        .collect();
    for (body, code, field) in [
        (
            json!({"batch_id": run["batch_id"], "item_count": 3, "total": run["total"], "results": results}),
            ErrorCode::Conflict,
            "item_count",
        ),
        (
            json!({"batch_id": run["batch_id"], "item_count": 2, "total": "1.00", "results": results}),
            ErrorCode::Conflict,
            "total",
        ),
        (
            json!({"batch_id": run["batch_id"], "item_count": 2, "total": run["total"], "results": [results[0]]}),
            ErrorCode::InvalidField,
            "results",
        ),
        (
            json!({"batch_id": run["batch_id"], "item_count": 2, "total": run["total"], "results": [results[0], results[0]]}),
            ErrorCode::InvalidField,
            "results[1].item_id",
        ),
    ] {
        let (c, f, m) = srejected(&client, "record-benefit-payments", body).await;
        assert_eq!((c, f.as_str()), (code, field), "{m}");
    }

    // The bank pays Ann's card and fails Dan's; the failure is reported.
    let stop = tokio_util::sync::CancellationToken::new();
    let bank = tokio::spawn({
        let (cfg, stop) = (bank_cfg(&env), stop.clone());
        async move { bank_sim::run(cfg, stop).await.expect("the bank runs") }
    });
    // Published before the batch's summary.
    let failed = event_where(&mut tap, "social.benefits.benefit-payment-failed", |_| true).await;
    assert_eq!(
        (&failed["id_number"], &failed["reason"]),
        (&json!(dan), &json!("无社保卡金融账户"))
    );
    let recorded = event_where(&mut tap, "social.benefits.benefit-payments-recorded", |_| true).await;
    assert_eq!(
        (
            &recorded["paid_count"],
            &recorded["paid_total"],
            &recorded["failed_count"],
            &recorded["failed_total"]
        ),
        (
            &json!(1),
            &json!(format!("{:.2}", monthly * d("3"))),
            &json!(1),
            &json!(format!("{dan_total:.2}"))
        )
    );

    // Dan's card is activated: July's run pays his 13 failed months again with July.
    card(&env, &dan, "activated").await;
    let july = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-07", "kind": "pension"}),
    )
    .await;
    let dan_july = july["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id_number"] == dan.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (dan_july["months"].as_array().unwrap().len(), &dan_july["amount"]),
        (14, &json!(format!("{:.2}", d("1166.67") * d("14"))))
    );
    let recorded = event_where(&mut tap, "social.benefits.benefit-payments-recorded", |b| {
        b["month"] == "2024-07"
    })
    .await;
    assert_eq!(
        (&recorded["paid_count"], &recorded["failed_count"]),
        (&json!(2), &json!(0))
    );
    let status = sok(&client, "batch-status", json!({"batch_id": july["batch_id"]})).await;
    assert_eq!(status["status"], "reported");

    // Unemployment and work-injury awards of the same shape; bad ones refused.
    let (c, f, _) = srejected(
        &client,
        "grant-benefit",
        json!({"id_number": ann, "kind": "unemployment", "monthly_amount": "1500.00",
        "from_month": "2024-06", "to_month": "2024-12", "decision_ref": "SY-1", "reviewer": "王"}),
    )
    .await;
    assert_eq!(
        (c, f.as_str()),
        (ErrorCode::NotEligible, "kind"),
        "Ann was never enrolled in unemployment insurance"
    );
    let (c, f, _) = srejected(
        &client,
        "grant-benefit",
        json!({"id_number": ann, "kind": "bonus", "monthly_amount": "1500.00",
        "from_month": "2024-06", "decision_ref": "SY-1", "reviewer": "王"}),
    )
    .await;
    assert_eq!((c, f.as_str()), (ErrorCode::InvalidField, "kind"));

    stop.cancel();
    bank.await.unwrap();
    broker.close().await;
    nothing_stuck(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn a_retirement_missed_in_the_wuhan_stop_is_back_paid_and_hangzhou_july_2020_late_retirees_are_paid_after_approval()
 {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    // The Wuhan social-business order, restarted (ended) 2022-01-20 09:00 in this replay (the
    // notice says only 另行通知).
    let mut o = order("wuhan-2021-social-business");
    o.ends_at = Some("2022-01-20T09:00:00+08:00".parse().unwrap());
    send_order(&env, o).await;
    let next_month = {
        let now = chrono::Utc::now()
            .with_timezone(&contracts::freeze::cst())
            .date_naive();
        let n = now.checked_add_months(chrono::Months::new(1)).unwrap();
        n.format("%Y-%m").to_string()
    };

    // Turned 60 on 2021-12-20, in the stop: filed 2022-04-19, within 3 months of the restart.
    let wei = id_of("1961-12-20", 1, true);
    transfer_in(&env, &client, &wei, "2021-11", 240, "0").await;
    let w = sok(
        &client,
        "apply-retirement",
        apply(&wei, "worker", "2022-04-19T10:00:00+08:00"),
    )
    .await;
    let w = approve(&client, &w).await;
    assert_eq!(
        (
            &w["from_month"],
            &w["start_rule"],
            &w["pension"]["monthly_pension"]
        ),
        (
            &json!("2022-01"),
            &json!("wuhan-2021-missed-during-stop"),
            &json!("1400.00")
        ),
        "{w}"
    );
    // Filed after the three months: paid from the month after approval.
    let late = id_of("1961-12-25", 2, true);
    transfer_in(&env, &client, &late, "2021-11", 240, "0").await;
    let l = sok(
        &client,
        "apply-retirement",
        apply(&late, "worker", "2022-04-21T10:00:00+08:00"),
    )
    .await;
    let l = approve(&client, &l).await;
    assert_eq!(
        (&l["from_month"], &l["start_rule"]),
        (&json!(next_month), &json!("late-application")),
        "{l}"
    );
    // The back months are paid in the next run (March 2022: January to March).
    let run = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2022-03", "kind": "pension"}),
    )
    .await;
    assert_eq!(
        (&run["item_count"], &run["total"]),
        (&json!(1), &json!("4200.00")),
        "{run}"
    );
    assert_eq!(
        run["items"][0]["months"],
        json!(["2022-01", "2022-02", "2022-03"])
    );

    // Hangzhou: women workers turning 50 in July 2020; one applied on 07-16, one on 07-20.
    let early = id_of("1970-07-08", 3, false);
    transfer_in(&env, &client, &early, "2020-06", 200, "19500.00").await;
    let e = sok(
        &client,
        "apply-retirement",
        apply(&early, "worker", "2020-07-16T16:00:00+08:00"),
    )
    .await;
    let e = approve(&client, &e).await;
    // 7000.00 × 200 / 12 × 1 % = 1166.67; 19500.00 / 195 = 100.00.
    assert_eq!(
        (
            &e["from_month"],
            &e["start_rule"],
            &e["pension"]["monthly_pension"]
        ),
        (&json!("2020-08"), &json!("in-time"), &json!("1266.67")),
        "{e}"
    );
    let after = id_of("1970-07-09", 4, false);
    transfer_in(&env, &client, &after, "2020-06", 200, "0").await;
    let h = sok(
        &client,
        "apply-retirement",
        apply(&after, "worker", "2020-07-20T09:00:00+08:00"),
    )
    .await;
    let h = approve(&client, &h).await;
    assert_eq!(
        (&h["from_month"], &h["start_rule"]),
        (&json!(next_month), &json!("hangzhou-2020-july-retirees")),
        "{h}"
    );
    nothing_stuck(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn unemployment_and_work_injury_awards_are_paid_by_their_own_runs_within_the_entitlement() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("social.benefits.*").await;
    let employer = testkit::credit_code(951);
    let r = social(
        &client,
        E,
        "register-employer",
        json!({"credit_code": employer, "name": "武汉某厂", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    // 70 unemployment months carried over: 5 to 10 years entitle to 18 months of benefit.
    let wu = id_of("1985-04-03", 1, true);
    let r = social(
        &client,
        E,
        "transfer-in",
        json!({"certificate": {"certificate_id": uuid::Uuid::now_v7().to_string(), "id_number": wu, "name": "吴",
                "insurance_types": ["unemployment", "work_injury"], "from_region": "370100", "to_region": "420100",
                "contribution_history_ref": "jinan/history", "issued_at": "2024-01-05T09:00:00+08:00",
                "contribution_months": 70},
               "phone": "13800000000", "category": "employee", "employer_credit_code": employer,
               "effective_month": "2024-02"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let psn = r.result.unwrap()["person_id"].as_str().unwrap().to_owned();
    let sql = format!("select count(*) from carried_contributions where person_id = '{psn}'");
    wait_for("benefits to see the transfer", WAIT, || async {
        (count(&env, B, &sql).await == 2).then_some(())
    })
    .await;
    let grant = |kind: &str, amount: &str, from: &str, to: Option<&str>| {
        let mut b = json!({"id_number": wu, "kind": kind, "monthly_amount": amount, "from_month": from,
                           "decision_ref": format!("DEC-{kind}"), "reviewer": "审核员李"});
        if let Some(to) = to {
            b["to_month"] = json!(to);
        }
        b
    };
    // Bad ones change nothing.
    for (body, code, field) in [
        (
            grant("unemployment", "1800.00", "2024-06", Some("2025-12")),
            ErrorCode::InvalidField,
            "to_month",
        ),
        (
            grant("unemployment", "1800.00", "2024-06", None),
            ErrorCode::InvalidField,
            "to_month",
        ),
        (
            grant("unemployment", "0.00", "2024-06", Some("2024-12")),
            ErrorCode::InvalidField,
            "monthly_amount",
        ),
        (
            grant("unemployment", "18.001", "2024-06", Some("2024-12")),
            ErrorCode::InvalidField,
            "monthly_amount",
        ),
        (
            grant("unemployment", "1800.00", "2024-13", Some("2024-12")),
            ErrorCode::InvalidField,
            "from_month",
        ),
        (
            grant("work-injury", "1800.00", "2024-06", Some("2024-05")),
            ErrorCode::InvalidField,
            "to_month",
        ),
    ] {
        let (c, f, m) = srejected(&client, "grant-benefit", body).await;
        assert_eq!((c, f.as_str()), (code, field), "{m}");
    }
    assert_eq!(count(&env, B, "select count(*) from benefit_awards").await, 0);

    let u = sok(
        &client,
        "grant-benefit",
        grant("unemployment", "1800.00", "2024-06", Some("2025-11")),
    )
    .await;
    assert_eq!(
        (&u["entitled_months"], &u["to_month"]),
        (&json!(18), &json!("2025-11")),
        "{u}"
    );
    let w = sok(
        &client,
        "grant-benefit",
        grant("work-injury", "2500.50", "2024-05", None),
    )
    .await;
    assert_eq!(w["entitled_months"], Value::Null);
    let (c, f, m) = srejected(
        &client,
        "grant-benefit",
        grant("work-injury", "100.00", "2026-01", Some("2026-03")),
    )
    .await;
    assert_eq!((c, f.as_str()), (ErrorCode::Conflict, "from_month"), "{m}");
    assert!(m.contains("2024-05 to further notice"), "{m}");
    for kind in ["unemployment", "work-injury"] {
        event_where(&mut tap, "social.benefits.benefit-awarded", |b| b["kind"] == kind).await;
    }

    // Each kind has its own run: July pays June and July of unemployment, May to July of the
    // work-injury benefit.
    let un = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-07", "kind": "unemployment"}),
    )
    .await;
    assert_eq!(
        (&un["item_count"], &un["total"]),
        (&json!(1), &json!("3600.00")),
        "{un}"
    );
    let wi = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-07", "kind": "work-injury"}),
    )
    .await;
    assert_eq!(
        (&wi["total"], &wi["items"][0]["months"]),
        (&json!("7501.50"), &json!(["2024-05", "2024-06", "2024-07"])),
        "{wi}"
    );
    assert_ne!(un["batch_id"], wi["batch_id"]);
    // Nothing owed for pensions this month: an empty run, no batch to the bank.
    let p = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-07", "kind": "pension"}),
    )
    .await;
    assert_eq!(
        (&p["status"], &p["item_count"], &p["total"]),
        (&json!("empty"), &json!(0), &json!("0.00"))
    );
    let (c, f, _) = srejected(
        &client,
        "run-benefit-payments",
        json!({"month": "2024-07", "kind": "bonus"}),
    )
    .await;
    assert_eq!((c, f.as_str()), (ErrorCode::InvalidField, "kind"));
    // Unemployment's last month bounds the run: December 2025 pays up to November only.
    let results = |b: &Value| -> Vec<Value> {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| json!({"item_id": i["item_id"], "outcome": "paid", "amount": i["amount"], "bank_ref": "B-1"}))
            .collect()
    };
    let rec = sok(
        &client,
        "record-benefit-payments",
        json!({"batch_id": un["batch_id"], "item_count": 1, "total": "3600.00", "results": results(&un)}),
    )
    .await;
    assert_eq!(
        (&rec["status"], &rec["paid_total"]),
        (&json!("reported"), &json!("3600.00"))
    );
    let (c, f, _) = srejected(
        &client,
        "record-benefit-payments",
        json!({"batch_id": un["batch_id"], "item_count": 1, "total": "3600.00", "results": results(&un)}),
    )
    .await;
    assert_eq!(
        (c, f.as_str()),
        (ErrorCode::Conflict, "batch_id"),
        "a second report of the batch"
    );
    let last = sok(
        &client,
        "run-benefit-payments",
        json!({"month": "2025-12", "kind": "unemployment"}),
    )
    .await;
    let months = last["items"][0]["months"].as_array().unwrap();
    assert_eq!(
        (months.len(), months.first(), months.last()),
        (16, Some(&json!("2024-08")), Some(&json!("2025-11")))
    );
    // An order that stops benefit approvals on the social line leaves the payment run open:
    // the run is its own operation group.
    send_order(
        &env,
        FreezeOrder {
            id: "test-social-approvals".into(),
            scope: contracts::freeze::FreezeScope {
                lines: vec![Line::Social],
                services: vec![B.into()],
                operations: vec!["benefit-approval".into()],
                ..Default::default()
            },
            mode: contracts::freeze::FreezeMode::Suspended,
            starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
            ends_at: None,
            reason: "cutover drill".into(),
            announcement: String::new(),
            deadlines: Default::default(),
            redirect_to: None,
        },
    )
    .await;
    let r = social(
        &client,
        B,
        "grant-benefit",
        grant("work-injury", "100.00", "2024-08", None),
    )
    .await;
    assert_eq!(r.status, ReplyStatus::Suspended, "{r:?}");
    let r = social(
        &client,
        B,
        "run-benefit-payments",
        json!({"month": "2024-08", "kind": "work-injury"}),
    )
    .await;
    assert_eq!(
        (r.status, r.result.as_ref().map(|b| b["total"].clone())),
        (ReplyStatus::Ok, Some(json!("2500.50"))),
        "{r:?}"
    );

    // Settlement stays medical business: the social line does not know it.
    let (c, _, _) = srejected(&client, "settle", json!({})).await;
    assert_eq!(c, ErrorCode::UnknownCommand);
    let r = cmd(
        &client,
        B,
        "run-benefit-payments",
        json!({"month": "2024-07", "kind": "pension"}),
    )
    .await;
    assert_eq!(r.error_code(), Some(ErrorCode::UnknownCommand), "{r:?}");
    nothing_stuck(&env).await;
    app.stop().await;
}

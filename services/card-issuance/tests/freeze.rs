//! Card loss and replacement at banks keep working while a line is frozen (issue 11 §2,
//! Wuhan 2021): card issuance is on the `common` line, and no order of the Wuhan timetable
//! closes its `bank` channel.

mod common;

use common::{enroll, in_person, ok, to_branch};
use contracts::freeze::{
    ControlMessage, Decision, FreezeMode, FreezeOrder, FreezeScope, Request, Timetable, decide,
};
use contracts::{Channel, Line, ReplyStatus};
use serde_json::json;
use testkit::{TestEnv, WAIT, send_command, wait_for};

const WUHAN: &str = include_str!("../../../cutovers/wuhan-2021.yaml");

use testkit::services::broadcast_control as control;

/// Waits until both services hold `n` orders.
async fn orders_stored(env: &TestEnv, n: i64) {
    for service in [common::SERVICE, "enrollment"] {
        let pool = env.pool(service).await;
        wait_for("the orders to be stored", WAIT, || async {
            let db = pool.get().await.ok()?;
            let got: i64 = db
                .query_one("select count(*) from freeze_orders", &[])
                .await
                .ok()?
                .get(0);
            (got == n).then_some(())
        })
        .await;
    }
}

/// An enrollment command of the medical line is refused: the freeze is in force.
async fn medical_is_frozen(client: &messaging::client::CommandClient, n: u32, category: &str, types: &str) {
    let cmd = messaging::client::Command::new(
        Line::Medical,
        "enrollment",
        "enroll-person",
        &json!({"id_number": testkit::id_number(n), "name": "某人", "phone": testkit::phone(n),
                "category": category, "insurance_types": [types], "effective_month": "2024-03"}),
    );
    let r = wait_for("the medical line to be frozen", WAIT, || async {
        let r = send_command(client, &cmd, WAIT).await.ok()?;
        (r.status == ReplyStatus::Suspended).then_some(r)
    })
    .await;
    assert_eq!(r.status, ReplyStatus::Suspended);
}

/// A person with an activated card.
async fn card_holder(env: &TestEnv, client: &messaging::client::CommandClient, n: u32) -> String {
    let id = enroll(env, client, n, "flexible").await;
    to_branch(client, &id).await;
    ok(
        client,
        "pick-up-card",
        json!({"id_number": id, "representative": in_person(), "documents": ["id_card"], "activate": true}),
        Channel::Bank,
    )
    .await;
    id
}

async fn loss_and_replacement_at_the_bank(client: &messaging::client::CommandClient, id: &str) {
    let v = ok(
        client,
        "report-loss",
        json!({"id_number": id, "kind": "temporary"}),
        Channel::Bank,
    )
    .await;
    assert_eq!(v["state"], "lost-temporarily");
    let v = ok(
        client,
        "report-loss",
        json!({"id_number": id, "kind": "formal"}),
        Channel::Bank,
    )
    .await;
    assert_eq!(v["state"], "lost");
    let v = ok(client, "replace-card", json!({"id_number": id}), Channel::Bank).await;
    assert_eq!(
        (v["kind"].as_str(), v["step"].as_str()),
        (Some("replacement"), Some("bank-account-opened"))
    );
}

#[tokio::test]
async fn a_loss_report_at_a_bank_is_answered_during_a_freeze_of_the_medical_line() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let id = card_holder(&env, &client, 500).await;
    let order = FreezeOrder {
        id: "test-medical-cutover".into(),
        scope: FreezeScope {
            lines: vec![Line::Medical],
            ..Default::default()
        },
        mode: FreezeMode::Suspended,
        starts_at: (chrono::Utc::now() - chrono::Duration::minutes(1)).fixed_offset(),
        ends_at: None,
        reason: "医保系统切换".into(),
        announcement: "医保系统切换，暂停办理".into(),
        deadlines: Default::default(),
        redirect_to: None,
    };
    control(
        &env,
        &ControlMessage::Order {
            order: Box::new(order),
        },
    )
    .await;
    orders_stored(&env, 1).await;
    medical_is_frozen(&client, 501, "flexible", "employee_medical").await;
    loss_and_replacement_at_the_bank(&client, &id).await;
    common::assert_drained(&env).await;
    app.stop().await;
}

#[test]
fn the_wuhan_timetable_leaves_the_bank_channel_of_card_issuance_open_at_every_moment() {
    let t = Timetable::from_yaml(WUHAN).expect("wuhan-2021.yaml loads");
    let card = |op: &'static str, channel| Request {
        line: Line::Common,
        service: contracts::card::SERVICE,
        channel: Some(channel),
        operation: op,
        payer_kind: None,
    };
    // Every moment an order starts or ends, and a minute after.
    let mut moments: Vec<chrono::DateTime<chrono::Utc>> = t
        .orders
        .iter()
        .flat_map(|o| [Some(o.starts_at), o.ends_at])
        .flatten()
        .flat_map(|m| [m.to_utc(), m.to_utc() + chrono::Duration::minutes(1)])
        .collect();
    moments.sort();
    for at in &moments {
        for op in ["report-loss", "replace-card", "get-card-status", "activate-card"] {
            assert_eq!(
                decide(&t.orders, *at, &card(op, Channel::Bank)),
                Decision::Open,
                "{op} at the bank at {at}"
            );
        }
    }
    // The timetable does close things at those moments: settlement, and payments at banks.
    let settlement = Request {
        line: Line::Medical,
        service: "benefits",
        channel: Some(Channel::Institution),
        operation: "settle",
        payer_kind: None,
    };
    let stop: chrono::DateTime<chrono::Utc> = "2021-12-23T00:00:00+08:00".parse().unwrap();
    assert_ne!(decide(&t.orders, stop, &settlement), Decision::Open);
    let bank_payment = Request {
        line: Line::Medical,
        service: "collection",
        channel: Some(Channel::Bank),
        operation: "record-payment",
        payer_kind: None,
    };
    assert_ne!(decide(&t.orders, stop, &bank_payment), Decision::Open);
}

#[tokio::test]
async fn with_the_wuhan_timetable_in_force_loss_and_replacement_at_banks_keep_working() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let id = card_holder(&env, &client, 600).await;
    // The orders started in 2021; those with no end (另行通知) are in force now.
    let t = Timetable::from_yaml(WUHAN).expect("wuhan-2021.yaml loads");
    for order in &t.orders {
        control(
            &env,
            &ControlMessage::Order {
                order: Box::new(order.clone()),
            },
        )
        .await;
    }
    orders_stored(&env, t.orders.len() as i64).await;
    medical_is_frozen(&client, 601, "resident", "resident_medical").await;
    loss_and_replacement_at_the_bank(&client, &id).await;
    common::assert_drained(&env).await;
    app.stop().await;
}

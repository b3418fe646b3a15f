//! The notification service with enrollment beside it, against a simulated SMSC, for the
//! tests: what the SMSC received is what a phone would show.

#![allow(dead_code)]

use contracts::Line;
use messaging::client::CommandClient;
use serde_json::{Value, json};
use smsc_sim::{SimConfig, Smsc};
use std::time::Duration;
use testkit::services::Services;
use testkit::{TestEnv, WAIT, wait_for};
use uuid::Uuid;

pub const SERVICE: &str = "notification";

/// The base configuration, against the simulator, with timings short enough for a test.
pub fn sms(addr: std::net::SocketAddr) -> notification::sms::SmsSettings {
    let (base, _) = notification::base_settings();
    notification::sms::SmsSettings {
        address: addr.to_string(),
        password: "secret".into(),
        submits_per_second: 0,
        enquire_link_ms: 1_000,
        response_timeout_ms: 2_000,
        max_attempts: 8,
        retry_ms: 200,
        throttle_backoff_ms: 100,
        batch: 100,
        poll_ms: 50,
        // A submit whose outcome is unknown is sent again after 7 s (the floor: the
        // response timeout plus 5 s) when no receipt names it.
        validity_ms: 1_000,
        receipt_grace_ms: 1_000,
        ..base
    }
}

pub fn notify(batch: i64) -> notification::NotifySettings {
    notification::NotifySettings {
        announcement_batch: batch,
        ..notification::base_settings().1
    }
}

pub async fn smsc(cfg: SimConfig) -> Smsc {
    smsc_sim::start(SimConfig {
        system_id: "insurance".into(),
        password: "secret".into(),
        receipt_delay: Duration::from_millis(50),
        ..cfg
    })
    .await
    .expect("the SMSC simulator listens")
}

/// The notification service and its workers, started under `services`' token.
pub async fn start_notification(
    env: &TestEnv,
    services: &mut Services,
    sms: notification::sms::SmsSettings,
    notify: notification::NotifySettings,
) -> tokio::task::JoinHandle<()> {
    let app = notification::build(notification::Settings {
        service: env.service_settings(SERVICE),
        sms: sms.clone(),
        notify: notify.clone(),
    })
    .await
    .expect("notification builds");
    let workers = notification::workers(&app, sms, notify, services.shutdown.clone());
    services.start(env, app);
    tokio::spawn(workers)
}

pub async fn start_enrollment(env: &TestEnv, services: &mut Services) {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    services.start(env, enrollment);
}

/// Enrolls person `n` on `line`; the person id.
pub async fn enroll(client: &CommandClient, line: Line, n: u32, types: &[&str]) -> String {
    let r = testkit::send(
        client,
        line,
        "enrollment",
        "enroll-person",
        json!({"id_number": testkit::id_number(n), "name": format!("参保人{n}"), "phone": testkit::phone(n),
               "category": "flexible", "insurance_types": types, "effective_month": "2024-03"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    r.result.expect("a result")["person_id"]
        .as_str()
        .expect("a person id")
        .to_owned()
}

/// The messages the SMSC has for `phone`, waiting until there are `n` of them.
pub async fn texts(smsc: &Smsc, phone: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} SMS to {phone}"), WAIT, || async {
        let got = smsc.received_by(phone);
        (got.len() >= n).then(|| got.into_iter().map(|r| r.text).collect::<Vec<_>>())
    })
    .await
}

/// Publishes an event as its service would (through the events exchange).
pub async fn publish_event(
    env: &TestEnv,
    line: Line,
    service: &str,
    name: &str,
    message_type: &str,
    body: &Value,
) -> Uuid {
    let id = Uuid::now_v7();
    publish_event_as(env, id, &format!("{line}.{service}.{name}"), message_type, body).await;
    id
}

pub async fn publish_event_as(env: &TestEnv, id: Uuid, routing_key: &str, message_type: &str, body: &Value) {
    let broker = env.broker();
    let ch = broker.channel().await.expect("a channel");
    ch.confirm_select(Default::default()).await.expect("confirms");
    let props = messaging::envelope::properties(id, message_type, None, None, "test", Default::default());
    messaging::broker::publish_confirmed(
        &ch,
        WAIT,
        &env.names().events_exchange(),
        routing_key,
        false,
        &serde_json::to_vec(body).expect("a body"),
        props,
    )
    .await
    .expect("the event is published");
    broker.close().await;
}

/// Publishes an event as its service would, twice under one message id (a redelivery);
/// the type is `<service>.<name>.v1`.
pub async fn publish_twice(env: &TestEnv, line: Line, service: &str, name: &str, body: &Value) -> Uuid {
    let id = Uuid::now_v7();
    let key = format!("{line}.{service}.{name}");
    let message_type = format!("{service}.{name}.v1");
    publish_event_as(env, id, &key, &message_type, body).await;
    publish_event_as(env, id, &key, &message_type, body).await;
    id
}

/// Publishes `body` twice (as [`publish_twice`]) and waits for the one new SMS it makes to
/// `phone`, which already had `before`; the new text.
pub async fn told_once(
    env: &TestEnv,
    smsc: &Smsc,
    phone: &str,
    before: usize,
    (line, service, name): (Line, &str, &str),
    body: &Value,
) -> String {
    publish_twice(env, line, service, name, body).await;
    let got = texts(smsc, phone, before + 1).await;
    got[before].clone()
}

/// What the service recorded for a person (`list-notifications`), oldest first.
pub async fn listed(client: &CommandClient, id_number: &str) -> Vec<Value> {
    let r = testkit::send(
        client,
        Line::Common,
        SERVICE,
        "list-notifications",
        json!({"id_number": id_number}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let mut v = r.result.expect("a result")["notifications"]
        .as_array()
        .expect("a list")
        .clone();
    v.reverse();
    v
}

/// The phone the notification service holds for `recipient`.
pub async fn contact_phone(env: &TestEnv, recipient: &str) -> Option<String> {
    let db = env.pool(SERVICE).await.get().await.ok()?;
    db.query_opt("select phone from contacts where recipient = $1", &[&recipient])
        .await
        .ok()?
        .and_then(|r| r.get(0))
}

//! Card issuance and enrollment running in process against the test environment: the card
//! service learns who may apply from enrollment's real events.
#![allow(dead_code)]

use contracts::{Channel, Line, Reply};
use messaging::client::{Command, CommandClient};
use serde_json::{Value, json};
use testkit::services::Services;
use testkit::{TestEnv, WAIT, send_command, wait_for};

pub const SERVICE: &str = "card-issuance";

pub struct Running {
    pub services: Services,
    pub card_ops: std::net::SocketAddr,
}

impl Running {
    pub async fn stop(self) {
        self.services.stop().await
    }
}

pub fn settings(env: &TestEnv) -> card_issuance::Settings {
    card_issuance::Settings {
        service: env.service_settings(SERVICE),
    }
}

/// Enrollment first (the card service binds to its events), then card issuance.
pub async fn spawn(env: &TestEnv) -> Running {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    let card = card_issuance::build(settings(env))
        .await
        .expect("card-issuance builds");
    let card_ops = card.ops_addr();
    let mut services = Services::new();
    services.start(env, enrollment).start(env, card);
    Running { services, card_ops }
}

/// A card command as sent from `channel`.
pub fn command(name: &str, body: Value, channel: Channel) -> Command {
    let mut cmd = Command::new(Line::Common, SERVICE, name, &body);
    cmd.channel = Some(channel);
    cmd
}

pub async fn send(client: &CommandClient, name: &str, body: Value, channel: Channel) -> Reply {
    send_command(client, &command(name, body, channel), WAIT)
        .await
        .expect("a reply")
}

/// Sends and expects `ok`; returns the status view.
pub async fn ok(client: &CommandClient, name: &str, body: Value, channel: Channel) -> Value {
    let r = send(client, name, body, channel).await;
    assert!(r.is_ok(), "{name}: {r:?}");
    r.result.expect("a result")
}

/// Sends and expects a rejection with `code` on `field`; returns the message.
pub async fn refused(
    client: &CommandClient,
    name: &str,
    body: Value,
    channel: Channel,
    code: &str,
    field: &str,
) -> String {
    let r = send(client, name, body, channel).await;
    let e = r
        .error
        .unwrap_or_else(|| panic!("{name} should be refused: {:?}", r.result));
    assert_eq!(
        (e.code.as_str(), e.field.as_deref()),
        (code, Some(field)),
        "{name}: {}",
        e.message
    );
    e.message
}

pub async fn status(client: &CommandClient, id: &str) -> Value {
    ok(
        client,
        "get-card-status",
        json!({"id_number": id}),
        Channel::Online,
    )
    .await
}

/// Enrolls test person `n` (employee medical as a flexible worker, or resident medical) and
/// waits until the card service has seen the event.
pub async fn enroll(env: &TestEnv, client: &CommandClient, n: u32, category: &str) -> String {
    let id = testkit::id_number(n);
    let types = if category == "resident" {
        json!(["resident_medical"])
    } else {
        json!(["employee_medical"])
    };
    let r = testkit::send(
        client,
        Line::Medical,
        "enrollment",
        "enroll-person",
        json!({
            "id_number": id, "name": format!("参保人{n}"), "phone": testkit::phone(n),
            "category": category, "insurance_types": types, "effective_month": "2024-03"
        }),
    )
    .await;
    assert!(r.is_ok(), "enrolled: {r:?}");
    known(env, &id).await;
    id
}

/// Waits until the card service's projection knows `id` with an active enrollment.
pub async fn known(env: &TestEnv, id: &str) {
    let pool = env.pool(SERVICE).await;
    wait_for("the card service to learn of the enrollment", WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one(
                "select count(*) from person_enrollments where id_number = $1 and status = 'active'",
                &[&id],
            )
            .await
            .ok()?
            .get(0);
        (n > 0).then_some(())
    })
    .await;
}

/// Applies, approves the photo and plays the bank through to the branch; returns the
/// application id.
pub async fn to_branch(client: &CommandClient, id: &str) -> String {
    let v = ok(
        client,
        "apply-card",
        json!({"id_number": id, "bank": "ICBC"}),
        Channel::Counter,
    )
    .await;
    let app = v["application_id"].as_str().unwrap().to_owned();
    ok(
        client,
        "review-photo",
        json!({"id_number": id, "approved": true}),
        Channel::Counter,
    )
    .await;
    bank_through(client, id, &app).await;
    app
}

/// The bank's answers from an opened account to the branch.
pub async fn bank_through(client: &CommandClient, id: &str, app: &str) {
    ok(
        client,
        "record-bank-account",
        json!({"id_number": id, "application_id": app, "opened": true, "financial_account": format!("6222{}", &id[6..18])}),
        Channel::Bank,
    )
    .await;
    from_production(client, id, app).await;
}

pub async fn from_production(client: &CommandClient, id: &str, app: &str) {
    let number = format!("K{}", &app[app.len() - 12..]);
    ok(
        client,
        "record-production",
        json!({"id_number": id, "application_id": app, "produced": true, "card_number": number}),
        Channel::Bank,
    )
    .await;
    ok(
        client,
        "record-shipment",
        json!({"id_number": id, "application_id": app, "tracking_number": "SF1234567890"}),
        Channel::Bank,
    )
    .await;
    ok(
        client,
        "record-arrival",
        json!({"id_number": id, "application_id": app, "branch": "工商银行昆区支行"}),
        Channel::Bank,
    )
    .await;
}

pub fn in_person() -> Value {
    json!({"by": "self"})
}

/// The end of a test: the card service's outbox is drained and none of its parking lots
/// holds anything (no message was parked as malformed or exhausted).
pub async fn assert_drained(env: &TestEnv) {
    let pool = env.pool(SERVICE).await;
    wait_for("the card outbox to drain", WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one("select count(*) from outbox where published_at is null", &[])
            .await
            .ok()?
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    let names = env.names();
    let broker = env.broker();
    let queues = [
        names.command_queue(SERVICE, Line::Common),
        names.event_queue(SERVICE, Line::Medical),
        names.event_queue(SERVICE, Line::Social),
    ];
    for q in queues {
        let parking = messaging::Names::parking(&q);
        let depth = messaging::parking::depth(&broker, &parking)
            .await
            .expect("a parking lot");
        assert_eq!(depth, 0, "{parking} holds {depth} messages");
    }
    broker.close().await;
}

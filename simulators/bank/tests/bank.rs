//! The whole happy path with the simulated bank (issue 11 §3-§4): apply and approve the
//! photo at the counter; the bank opens the account, produces and ships the card through
//! the broker; it is picked up and activated. With a seed that fails the account opening,
//! the person sees red, and the agency's rollback sends the request again.

use contracts::{Channel, Line};
use messaging::client::{Command, CommandClient};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::services::Services;
use testkit::{TestEnv, WAIT, send_command, wait_for};
use tokio_util::sync::CancellationToken;

const CARD: &str = "card-issuance";

async fn spawn(env: &TestEnv) -> Services {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    let card = card_issuance::build(card_issuance::Settings {
        service: env.service_settings(CARD),
    })
    .await
    .expect("card-issuance builds");
    let mut s = Services::new();
    s.start(env, enrollment).start(env, card);
    s
}

/// Runs the simulator; returns once it consumes its queue, so no request is missed.
async fn bank(
    env: &TestEnv,
    fail_account: f64,
    seed: u64,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let queue = env.names().subscriber_queue(bank_sim::SUBSCRIBER);
    env.track_queues([queue.clone()]);
    let cfg = bank_sim::SimConfig {
        amqp_url: testkit::amqp_url(),
        prefix: env.prefix(),
        seed,
        fail_account,
        fail_production: 0.0,
        delay: Duration::from_millis(50),
        branch: "建设银行青山支行".into(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            bank_sim::run(cfg, stop).await.expect("the simulator runs");
        }
    });
    wait_for("the bank to consume its queue", WAIT, || async {
        let exists = testkit::services::queue_exists(env, &queue).await;
        (exists && env.consumer_count(&queue).await > 0).then_some(())
    })
    .await;
    (stop, task)
}

async fn card(client: &CommandClient, name: &str, body: Value, channel: Channel) -> Value {
    let mut cmd = Command::new(Line::Common, CARD, name, &body);
    cmd.channel = Some(channel);
    let r = send_command(client, &cmd, WAIT).await.expect("a reply");
    assert!(r.is_ok(), "{name}: {r:?}");
    r.result.expect("a result")
}

async fn enrolled(env: &TestEnv, client: &CommandClient, n: u32) -> String {
    let id = testkit::id_number(n);
    let r = testkit::send(
        client,
        Line::Medical,
        "enrollment",
        "enroll-person",
        json!({"id_number": id, "name": format!("参保人{n}"), "phone": testkit::phone(n), "category": "flexible",
               "insurance_types": ["employee_medical"], "effective_month": "2024-03"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let pool = env.pool(CARD).await;
    wait_for("the card service to know the person", WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one(
                "select count(*) from person_enrollments where id_number = $1",
                &[&id],
            )
            .await
            .ok()?
            .get(0);
        (n > 0).then_some(())
    })
    .await;
    id
}

async fn reaches(client: &CommandClient, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, Duration::from_secs(30), || async {
        let v = card(
            client,
            "get-card-status",
            json!({"id_number": id}),
            Channel::Online,
        )
        .await;
        pred(&v).then_some(v)
    })
    .await
}

#[tokio::test]
async fn the_simulated_bank_opens_the_account_produces_and_ships_the_card() {
    let env = TestEnv::new();
    let services = spawn(&env).await;
    let (stop, sim) = bank(&env, 0.0, 1).await;
    let client = env.client().await;
    let id = enrolled(&env, &client, 700).await;
    card(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "CCB"}),
        Channel::Counter,
    )
    .await;
    card(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": true}),
        Channel::Counter,
    )
    .await;
    let v = reaches(&client, &id, "the card at the branch", |v| {
        v["step"] == "arrived-at-branch"
    })
    .await;
    assert_eq!(v["text"], "卡片已到达建设银行青山支行，可以领卡");
    assert!(
        v["financial_account"].as_str().unwrap().starts_with("6222"),
        "{v}"
    );
    assert!(v["card_number"].as_str().unwrap().starts_with('K'), "{v}");
    let v = card(
        &client,
        "pick-up-card",
        json!({"id_number": id, "representative": {"by": "self"}, "documents": ["id_card"], "activate": true}),
        Channel::Bank,
    )
    .await;
    assert_eq!(v["state"], "activated");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"card-shipped") && steps.contains(&"card-arrived"),
        "{steps:?}"
    );
    stop.cancel();
    sim.await.unwrap();
    services.stop().await;
}

#[tokio::test]
async fn a_failed_opening_is_red_and_the_rollback_asks_the_bank_again() {
    let env = TestEnv::new();
    let services = spawn(&env).await;
    // Every opening fails: the person sees why, and the rollback's new attempt fails too.
    let (stop, sim) = bank(&env, 1.0, 42).await;
    let client = env.client().await;
    let id = enrolled(&env, &client, 701).await;
    card(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "CCB"}),
        Channel::Counter,
    )
    .await;
    card(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": true}),
        Channel::Counter,
    )
    .await;
    let v = reaches(&client, &id, "the opening to fail", |v| v["state"] == "failed").await;
    assert_eq!(
        (v["colour"].as_str(), v["failure"].as_str()),
        (Some("red"), Some("bank-account-failed"))
    );
    assert_eq!(v["text"], "银行开户失败：身份信息与银行核验不一致");
    card(&client, "roll-back", json!({"id_number": id}), Channel::Counter).await;
    let v = reaches(&client, &id, "the second attempt to fail", |v| {
        v["state"] == "failed"
            && v["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["step"] == "bank-account-failed")
                .count()
                == 2
    })
    .await;
    assert_eq!(v["step"], "photo-approved");
    stop.cancel();
    sim.await.unwrap();
    services.stop().await;
}

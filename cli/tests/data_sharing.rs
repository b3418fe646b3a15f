//! The data-sharing channel frozen for the medical line (issue 7 §4): an external subscriber
//! provisioned by the binary receives both lines' events through the lines' shovels; while an
//! order holds the medical line's data sharing it receives only the social line's, the
//! medical ones waiting in the line's hold queue; at the lift it receives every held one, in
//! the order they were published, once.
//!
//! Needs the management API with the shovel plugin (`scripts/servers.sh` enables both;
//! `make test` runs it first) at `RABBITMQ_API_URL`.

mod common;

use common::{both_listening, ctl, exit};
use contracts::Line;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use messaging::management::{Api, amqp_target};
use testkit::{TestEnv, WAIT, id_number, send_command, wait_for};

const NAME: &str = "data-sharing-test";

/// What the subscriber has received so far: (routing key, id number), in delivery order.
async fn take(env: &TestEnv, queue: &str, got: &mut Vec<(String, String)>) {
    let broker = env.broker();
    let ch = broker.channel().await.expect("a channel");
    while let Ok(Some(m)) = ch.basic_get(queue.into(), BasicGetOptions::default()).await {
        let body: serde_json::Value = serde_json::from_slice(&m.delivery.data).expect("JSON");
        got.push((
            m.delivery.routing_key.to_string(),
            body["id_number"].as_str().unwrap_or_default().to_owned(),
        ));
        m.delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    broker.close().await;
}

async fn wait_received(env: &TestEnv, queue: &str, got: &mut Vec<(String, String)>, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "received {got:?}, expected {n}"
        );
        take(env, queue, got).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn frozen_data_sharing_holds_the_lines_events_and_releases_them_in_order_at_the_lift() {
    let env = TestEnv::new();
    let names = env.names();
    let services = common::spawn(&env).await;
    both_listening(&env).await;
    let _cleanup = common::RemoveSubscribers {
        prefix: env.prefix(),
        names: vec![NAME],
    };
    let out = ctl_with(
        &env,
        &[
            "subscriber",
            "provision",
            NAME,
            "--bind",
            "*.enrollment.person-enrolled",
            "--password-env",
            "DS_TEST_PASSWORD",
        ],
    )
    .await;
    exit(&out, 0);
    let queue = names.subscriber_queue(NAME);
    let client = env.client().await;
    let mut got = Vec::new();

    // Open: both lines' events reach the subscriber through the shovels.
    for (n, line) in [(1, Line::Medical), (2, Line::Social)] {
        assert!(
            send_command(&client, &common::enroll_flexible(n, line), WAIT)
                .await
                .expect("a reply")
                .is_ok()
        );
    }
    wait_received(&env, &queue, &mut got, 2).await;

    // The medical line's data sharing frozen (to be announced).
    common::hold_medical_data_sharing(&env, "ds-medical", "医保数据共享暂停（系统切换）").await;
    let t = amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    let api = Api::new(&testkit::api_url(), &t.user, &t.password, WAIT).expect("the API");
    assert!(
        api.shovel(&t.vhost, &names.data_sharing_shovel(Line::Social))
            .await
            .expect("API")
            .is_some(),
        "the social line's shovel is untouched"
    );
    // `freeze status` says so, per service and line.
    let status = common::json(&common::ctl(&env, &["--json", "freeze", "status"]).await);
    let lines: Vec<&serde_json::Value> = status
        .as_array()
        .expect("one status per service")
        .iter()
        .flat_map(|s| s["lines"].as_array().expect("lines").iter())
        .collect();
    assert!(!lines.is_empty(), "{status}");
    for l in &lines {
        let held = l["line"] == "medical";
        assert_eq!(l["data_sharing_held"], held, "{status}");
    }
    let people = common::exit(&common::ctl(&env, &["freeze", "status"]).await, 0);
    assert!(people.contains("data sharing held"), "{people}");

    // Commands on both lines go on (the order names only the channel); the subscriber gets
    // the social events, the medical ones wait in the hold queue in publication order.
    let medical: Vec<u32> = (11..=15).collect();
    for &n in &medical {
        assert!(
            send_command(&client, &common::enroll_flexible(n, Line::Medical), WAIT)
                .await
                .expect("a reply")
                .is_ok()
        );
        assert!(
            send_command(&client, &common::enroll_flexible(n + 100, Line::Social), WAIT)
                .await
                .expect("a reply")
                .is_ok()
        );
    }
    wait_received(&env, &queue, &mut got, 2 + medical.len()).await;
    let hold = names.data_sharing_hold(Line::Medical);
    wait_for("the medical events held", WAIT, || async {
        let broker = env.broker();
        let depth = messaging::parking::depth(&broker, &hold).await.ok();
        broker.close().await;
        // Every medical event waits there (freeze-started too), not only those subscribed to.
        (depth >= Some(medical.len() as u32)).then_some(())
    })
    .await;
    assert!(
        got[2..]
            .iter()
            .all(|(key, _)| key == "social.enrollment.person-enrolled"),
        "only the social line's events while medical data sharing is frozen: {got:?}"
    );

    // The lift: every held event, in the order published, then nothing more.
    exit(&ctl(&env, &["freeze", "lift", "ds-medical"]).await, 0);
    wait_received(&env, &queue, &mut got, 2 + 2 * medical.len()).await;
    let released: Vec<String> = got[2 + medical.len()..]
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    let expected: Vec<String> = medical.iter().map(|&n| id_number(n)).collect();
    assert_eq!(
        released, expected,
        "held medical events released in order: {got:?}"
    );
    assert!(
        send_command(&client, &common::enroll_flexible(99, Line::Medical), WAIT)
            .await
            .expect("a reply")
            .is_ok()
    );
    wait_received(&env, &queue, &mut got, 3 + 2 * medical.len()).await;
    assert_eq!(
        got.last().map(|(_, id)| id.clone()),
        Some(id_number(99)),
        "flowing again, nothing twice: {got:?}"
    );

    client.close().await;
    services.stop().await;
}

/// `ctl` with the password variable `subscriber provision` reads.
async fn ctl_with(env: &TestEnv, args: &[&str]) -> std::process::Output {
    common::ctl_api(env, args, &[("DS_TEST_PASSWORD", "ds-test-password-1")]).await
}

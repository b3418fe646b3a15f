//! The `insurancectl` binary against the real broker, each test under its own name prefix
//! (`testkit::TestEnv`), which removes its queues and exchanges when dropped.

use contracts::{ErrorBody, ErrorCode, Reply};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use messaging::envelope::{headers_of, properties};
use messaging::parking;
use messaging::topology::{QueueSettings, declare_shared, declare_work_queue};
use messaging::{Broker, Names};
use std::collections::BTreeMap;
use std::process::Output;
use testkit::{TestEnv, WAIT, wait_for};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Runs the binary with this env's broker and prefix.
async fn ctl(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_insurancectl"));
    cmd.args(args)
        .env("AMQP_URL", testkit::amqp_url())
        .env("INSURANCE_PREFIX", env.prefix())
        .env_remove("INSURANCE_OPERATOR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("insurancectl starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("insurancectl finishes")
        .expect("insurancectl output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

async fn depth(broker: &Broker, queue: &str) -> u32 {
    parking::depth(broker, queue).await.expect("depth")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_messages_are_listed_shown_and_replayed_one_by_one() {
    let env = TestEnv::new();
    let queue = format!("{}demo.medical.commands", env.prefix());
    let lot = Names::parking(&queue);
    env.track_queues(messaging::topology::work_queue_names(
        &queue,
        &QueueSettings::default(),
    ));

    let broker = env.broker();
    let ch = broker.channel().await.expect("channel");
    declare_work_queue(&ch, &queue, &QueueSettings::default(), broker.timeout())
        .await
        .expect("work queue");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");

    // Two messages as the consumer parks them: reason, origin, code, original routing key.
    let parked = [
        (
            Uuid::now_v7(),
            "body is not JSON: expected value at line 1",
            "MALFORMED_MESSAGE",
        ),
        (Uuid::now_v7(), "unknown command 'frobnicate'", "UNKNOWN_COMMAND"),
    ];
    for (id, reason, code) in &parked {
        let mut headers = BTreeMap::new();
        headers.insert("x-parked-reason".to_owned(), (*reason).to_owned());
        headers.insert("x-parked-from".to_owned(), queue.clone());
        headers.insert("x-parked-code".to_owned(), (*code).to_owned());
        headers.insert("x-parked-at".to_owned(), chrono::Utc::now().to_rfc3339());
        headers.insert(
            "x-original-routing-key".to_owned(),
            "medical.demo.enroll-person".to_owned(),
        );
        let props = properties(*id, "demo.enroll-person.v1", None, None, "test", headers);
        let confirm = ch
            .basic_publish(
                "".into(),
                lot.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                br#"{"id_number":"420102196001010011"}"#,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(matches!(confirm, Confirmation::Ack(None)), "{confirm:?}");
    }
    wait_for("both parked", WAIT, || async {
        (depth(&broker, &lot).await == 2).then_some(())
    })
    .await;

    // list --json: both, with their reasons, and nothing taken out of the lot.
    let out = ctl(&env, &["parked", "list", "demo.medical.commands", "--json"], None).await;
    assert_exit(&out, 0);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (id, reason, code) in &parked {
        let m = listed
            .iter()
            .find(|m| m["message_id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not listed: {listed:?}"));
        assert_eq!(m["reason"], *reason);
        assert_eq!(m["code"], *code);
        assert_eq!(m["parked_from"], queue.as_str());
        assert_eq!(m["routing_key"], "medical.demo.enroll-person");
    }
    // `list` puts the messages back with basic.nack, which the broker answers with nothing: a
    // quorum queue may count them again only a moment later.
    wait_for("both still parked", WAIT, || async {
        (depth(&broker, &lot).await == 2).then_some(())
    })
    .await;

    // The table for people, by the parking lot's full name.
    let out = ctl(&env, &["parked", "list", &lot, "--limit", "1"], None).await;
    assert_exit(&out, 0);
    let table = text(&out.stdout);
    assert!(table.starts_with("MESSAGE ID"), "{table}");
    assert!(table.contains("1 of 2 parked message(s)"), "{table}");

    // show: every header and the pretty body.
    let first = parked[0].0.to_string();
    let out = ctl(&env, &["parked", "show", "demo.medical.commands", &first], None).await;
    assert_exit(&out, 0);
    let shown = text(&out.stdout);
    assert!(shown.contains(&format!("message id   {first}")), "{shown}");
    assert!(shown.contains("  x-parked-code: MALFORMED_MESSAGE\n"), "{shown}");
    assert!(shown.contains("  ce-specversion: 1.0\n"), "{shown}");
    assert!(shown.contains("body:\n  {\n    \"id_number\": "), "{shown}");

    // replay refuses to guess, and says so when the id is not there.
    let out = ctl(&env, &["parked", "replay", "demo.medical.commands"], None).await;
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("--all"), "{}", text(&out.stderr));
    let stranger = Uuid::now_v7().to_string();
    let out = ctl(
        &env,
        &["parked", "replay", "demo.medical.commands", &stranger],
        None,
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("no message with id"),
        "{}",
        text(&out.stderr)
    );
    wait_for("both still parked", WAIT, || async {
        (depth(&broker, &lot).await == 2).then_some(())
    })
    .await;

    // replay one: it goes back to its queue, the other stays parked.
    let out = ctl(&env, &["parked", "replay", "demo.medical.commands", &first], None).await;
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).starts_with("replayed 1 message(s)"),
        "{}",
        text(&out.stdout)
    );
    wait_for("one message back on the work queue", WAIT, || async {
        (depth(&broker, &queue).await == 1).then_some(())
    })
    .await;
    // The other one was put back with basic.nack: counted again a moment later (see above).
    wait_for("the other one still parked", WAIT, || async {
        (depth(&broker, &lot).await == 1).then_some(())
    })
    .await;

    // queues depth reads both, names without prefix.
    let out = ctl(
        &env,
        &[
            "queues",
            "depth",
            "demo.medical.commands",
            "demo.medical.commands.parking",
            "--json",
        ],
        None,
    )
    .await;
    assert_exit(&out, 0);
    let depths: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        depths,
        serde_json::json!([{"queue": queue, "messages": 1}, {"queue": lot, "messages": 1}])
    );

    let _ = ch.close(200, "done".into()).await;
    broker.close().await;
}

/// What the fake service saw of one command.
#[derive(Debug)]
struct Seen {
    routing_key: String,
    message_id: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A stand-in for a service: answers `medical.fake.<name>` by name, never answers `silent`.
async fn fake_service(env: &TestEnv, broker: &Broker) -> mpsc::UnboundedReceiver<Seen> {
    let names = env.names();
    let ch = broker.channel().await.expect("channel");
    declare_shared(&ch, &names, &QueueSettings::default(), broker.timeout())
        .await
        .expect("exchanges");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    ch.queue_bind(
        q.name().clone(),
        names.commands_exchange().as_str().into(),
        "medical.fake.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "fake".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let _ = d.acker.ack(BasicAckOptions::default()).await;
            let name = d
                .routing_key
                .as_str()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let reply = match (
                name.as_str(),
                serde_json::from_slice::<serde_json::Value>(&d.data),
            ) {
                (_, Err(e)) => Some(Reply::rejected(ErrorBody::new(
                    ErrorCode::MalformedMessage,
                    e.to_string(),
                ))),
                ("good", Ok(body)) => Some(Reply::ok(serde_json::json!({ "echo": body }))),
                ("bad", Ok(_)) => Some(Reply::rejected(
                    ErrorBody::new(ErrorCode::InvalidIdNumber, "bad check character").with_field("id_number"),
                )),
                _ => None,
            };
            let _ = tx.send(Seen {
                routing_key: d.routing_key.to_string(),
                message_id: d
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                headers: headers_of(&d.properties),
                body: d.data.clone(),
            });
            if let (Some(reply), Some(to)) = (reply, d.properties.reply_to().as_ref()) {
                let mut props = BasicProperties::default().with_content_type("application/json".into());
                if let Some(c) = d.properties.correlation_id() {
                    props = props.with_correlation_id(c.clone());
                }
                let _ = ch
                    .basic_publish(
                        "".into(),
                        to.as_str().into(),
                        BasicPublishOptions::default(),
                        &serde_json::to_vec(&reply).expect("reply JSON"),
                        props,
                    )
                    .await;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_the_reply_and_exits_by_its_status() {
    let env = TestEnv::new();
    let broker = env.broker();
    let mut seen = fake_service(&env, &broker).await;
    let next_seen = async |seen: &mut mpsc::UnboundedReceiver<Seen>| {
        tokio::time::timeout(WAIT, seen.recv())
            .await
            .expect("the fake service got a command")
            .expect("fake service alive")
    };

    // ok, with our message id, channel and operator on the wire.
    let id = Uuid::now_v7().to_string();
    let out = ctl(
        &env,
        &[
            "send",
            "medical",
            "fake",
            "good",
            "--body",
            r#"{"n": 1}"#,
            "--message-id",
            &id,
            "--channel",
            "online",
            "--operator",
            "wang.li",
        ],
        None,
    )
    .await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        format!(
            "ok  medical.fake.good  (message {id})\nresult:\n  {{\n    \"echo\": {{\n      \"n\": 1\n    }}\n  }}\n"
        )
    );
    let s = next_seen(&mut seen).await;
    assert_eq!(
        (s.routing_key.as_str(), s.message_id.as_str()),
        ("medical.fake.good", id.as_str())
    );
    assert_eq!(s.headers.get("x-channel").map(String::as_str), Some("online"));
    assert_eq!(s.headers.get("x-operator").map(String::as_str), Some("wang.li"));
    assert_eq!(s.body, br#"{"n": 1}"#);

    // rejected, as JSON, from a body on standard input: exit 2.
    let out = ctl(
        &env,
        &["send", "medical", "fake", "bad", "-", "--json"],
        Some(r#"{"id_number": "x"}"#),
    )
    .await;
    assert_exit(&out, 2);
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON reply");
    assert_eq!(reply["status"], "rejected");
    assert_eq!(reply["error"]["code"], "INVALID_ID_NUMBER");
    assert_eq!(next_seen(&mut seen).await.body, br#"{"id_number": "x"}"#);

    // The same, for people.
    let out = ctl(&env, &["send", "medical", "fake", "bad"], None).await;
    assert_exit(&out, 2);
    assert!(
        text(&out.stdout).starts_with("rejected  INVALID_ID_NUMBER  field id_number: bad check character\n"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(next_seen(&mut seen).await.body, b"{}");

    // Invalid JSON stays here; with --raw it goes out as it is.
    let out = ctl(
        &env,
        &["send", "medical", "fake", "good", "--body", "{oops"],
        None,
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("not valid JSON"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(
        &env,
        &["send", "medical", "fake", "good", "--body", "{oops", "--raw"],
        None,
    )
    .await;
    assert_exit(&out, 2);
    assert!(text(&out.stdout).starts_with("rejected  MALFORMED_MESSAGE"));
    assert_eq!(
        next_seen(&mut seen).await.body,
        b"{oops",
        "only the raw one was sent"
    );

    // Transport failures: unroutable, and no reply in time.
    let out = ctl(&env, &["send", "medical", "nobody", "anything"], None).await;
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("unroutable"), "{}", text(&out.stderr));
    let out = ctl(
        &env,
        &["send", "medical", "fake", "silent", "--timeout", "1"],
        None,
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("no reply to medical.fake.silent within 1s"),
        "{}",
        text(&out.stderr)
    );

    // An unreachable broker is named, without its password.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_insurancectl"))
        .args([
            "--amqp-url",
            "amqp://guest:s3cret@127.0.0.1:1/%2f",
            "send",
            "medical",
            "fake",
            "good",
        ])
        .output()
        .await
        .expect("runs");
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach the broker at amqp://guest:***@127.0.0.1:1/%2f"),
        "{err}"
    );
    assert!(!err.contains("s3cret"));

    broker.close().await;
}

//! `insurancectl subscriber` against the real broker and its management API: the tax
//! authority's user, provisioned by the binary, connects as itself and may do exactly what it
//! needs (consume its queue, publish payment commands, get replies) and nothing else.
//!
//! Needs the management API (`scripts/servers.sh` makes sure it is there; `make test` runs it
//! first) at `RABBITMQ_API_URL`, default http://127.0.0.1:15672.

use contracts::{Line, Reply};
use futures_util::StreamExt;
use insurancectl::management::{Api, amqp_target};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use messaging::BrokerConfig;
use messaging::client::{Command, CommandClient};
use messaging::topology::{QueueSettings, declare_shared, declare_work_queue};
use std::future::Future;
use std::process::Output;
use testkit::{TestEnv, WAIT, wait_for};
use tokio::sync::mpsc;

const NAME: &str = "tax-authority";
const PASSWORD_VAR: &str = "TEST_TAX_AUTHORITY_PASSWORD";
const PUBLISH_RULE: &str = r"commands:^(medical|social)\.collection\.record-payment$";

fn api_url() -> String {
    std::env::var("RABBITMQ_API_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

fn ctl_command(prefix: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_insurancectl"));
    cmd.args(args)
        .env("AMQP_URL", testkit::amqp_url())
        .env("INSURANCE_PREFIX", prefix)
        .env("RABBITMQ_API_URL", api_url())
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs the binary with this env's broker, prefix and API.
async fn ctl(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::from(ctl_command(&env.prefix(), args));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    tokio::time::timeout(WAIT * 3, cmd.output())
        .await
        .expect("insurancectl finishes")
        .expect("insurancectl runs")
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

/// Removes the subscriber (user, permissions, queues) even when the test panics half-way.
struct RemoveOnDrop {
    prefix: String,
    name: &'static str,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let out = ctl_command(&self.prefix, &["subscriber", "remove", self.name, "--force"]).output();
        if std::thread::panicking() {
            return;
        }
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("cleanup: subscriber remove failed: {}", text(&o.stderr)),
            Err(e) => eprintln!("cleanup: subscriber remove did not run: {e}"),
        }
    }
}

/// The AMQP URL of the tests' broker, as `user`.
fn url_as(user: &str, password: &str) -> String {
    testkit::url_as(&testkit::amqp_url(), user, password)
}

fn is_access_refused(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(a) if a.get_id() == 403)
}

/// Runs one operation the tax user must not be allowed, on a channel of its own (a refusal
/// closes the channel), and asserts the broker answered ACCESS_REFUSED (403).
async fn assert_refused<T, F, Fut>(conn: &Connection, what: &str, op: F)
where
    T: std::fmt::Debug,
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = Result<T, lapin::Error>>,
{
    let ch = conn.create_channel().await.expect("channel");
    let outcome = tokio::time::timeout(WAIT, op(ch.clone()))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"));
    match outcome {
        Err(e) if is_access_refused(&e) => {}
        other => panic!("{what}: expected ACCESS_REFUSED (403), got {other:?}"),
    }
    assert!(
        !ch.status().connected(),
        "{what}: the refusal should have closed the channel"
    );
}

/// Publishes one message with publisher confirms; the confirmation when it was taken.
async fn publish(ch: Channel, exchange: String, key: &str) -> Result<Confirmation, lapin::Error> {
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let confirm = ch
        .basic_publish(
            exchange.as_str().into(),
            key.into(),
            BasicPublishOptions::default(),
            br#"{"probe":true}"#,
            BasicProperties::default(),
        )
        .await?;
    confirm.await
}

/// A stand-in for the collection service: answers every payment command on `queue` with ok,
/// reporting the routing keys it saw.
async fn fake_collection(ch: Channel, queue: &str) -> mpsc::UnboundedReceiver<String> {
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "fake-collection".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume the scratch queue");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let _ = d.acker.ack(BasicAckOptions::default()).await;
            let _ = tx.send(d.routing_key.to_string());
            if let Some(to) = d.properties.reply_to() {
                let mut props = BasicProperties::default().with_content_type("application/json".into());
                if let Some(c) = d.properties.correlation_id() {
                    props = props.with_correlation_id(c.clone());
                }
                let reply = Reply::ok(serde_json::json!({ "recorded": true }));
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
async fn the_tax_authority_may_read_its_queue_and_send_payments_and_nothing_else() {
    let env = TestEnv::new();
    let prefix = env.prefix();
    let names = env.names();
    let subscriber_queue = names.subscriber_queue(NAME);
    env.track_queues(insurancectl::subscriber::queues(&names, NAME));

    // As the operator (guest): a service's queue the subscriber must not touch, and a scratch
    // queue standing in for the collection service so that payment commands are routable.
    let broker = env.broker();
    let timeout = broker.timeout();
    let guest = broker.channel().await.expect("guest channel");
    declare_shared(&guest, &names, &QueueSettings::default(), timeout)
        .await
        .expect("shared exchanges");
    let foreign = format!("{prefix}enrollment.medical.commands");
    declare_work_queue(&guest, &foreign, &QueueSettings::default(), timeout)
        .await
        .expect("foreign queue");
    let scratch = format!("{prefix}scratch.payments");
    let own_named = format!("{prefix}tax-authority.own");
    env.track_queues(messaging::topology::work_queue_names(
        &foreign,
        &QueueSettings::default(),
    ));
    env.track_queues([scratch.clone(), own_named.clone()]);
    guest
        .queue_declare(
            scratch.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("scratch queue");
    guest
        .queue_bind(
            scratch.as_str().into(),
            names.commands_exchange().as_str().into(),
            "*.collection.record-payment".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("scratch binding");
    let mut payments = fake_collection(broker.channel().await.expect("channel"), &scratch).await;

    // Provision, with the password from a variable.
    let password = insurancectl::subscriber::generate_password();
    let _cleanup = RemoveOnDrop {
        prefix: prefix.clone(),
        name: NAME,
    };
    let out = ctl(
        &env,
        &[
            "subscriber",
            "provision",
            NAME,
            "--bind",
            "*.collection.contribution-assessed",
            "--bind",
            "*.collection.arrears-detected",
            "--publish",
            PUBLISH_RULE,
            "--password-env",
            PASSWORD_VAR,
        ],
        &[(PASSWORD_VAR, &password)],
    )
    .await;
    assert_exit(&out, 0);
    let summary = text(&out.stdout);
    let user = format!("{prefix}{NAME}");
    let p = prefix.replace('.', "\\.");
    for want in [
        format!("  user       {user} (no tags; created)\n"),
        "  vhost /    configure ^amq\\.gen-.*$\n".to_owned(),
        format!("             write     ^{p}insurance\\.commands$\n"),
        format!("             read      ^({p}subscriber\\.tax-authority|amq\\.gen-.*)$\n"),
        format!(
            "  topics     {prefix}insurance.commands  write ^(medical|social)\\.collection\\.record-payment$  read ^$\n"
        ),
    ] {
        assert!(summary.contains(&want), "missing {want:?} in\n{summary}");
    }
    assert!(!summary.contains(&password), "a given password is never printed");
    assert!(!summary.contains("password:"), "{summary}");

    // show, as JSON: the queue, its bindings and the permissions, through the API.
    let out = ctl(&env, &["subscriber", "show", NAME, "--json"], &[]).await;
    assert_exit(&out, 0);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["queue"], subscriber_queue.as_str());
    assert_eq!(shown["queue_state"]["type"], "quorum");
    assert_eq!(
        shown["bindings"],
        serde_json::json!([
            [names.subscribers_exchange(), "*.collection.arrears-detected"],
            [names.subscribers_exchange(), "*.collection.contribution-assessed"]
        ])
    );
    assert_eq!(shown["user_tags"], serde_json::json!([]));
    assert_eq!(shown["permissions"]["configure"], "^amq\\.gen-.*$");
    assert_eq!(shown["topic_permissions"].as_array().map(Vec::len), Some(3));

    // --- connected as the tax authority -------------------------------------------------
    let tax_url = url_as(&user, &password);
    let tax = Connection::connect(&tax_url, ConnectionProperties::default())
        .await
        .expect("the tax authority logs in with its password");

    // It CAN consume its queue, and gets the events it is bound to (and only those).
    let ch = tax.create_channel().await.expect("channel");
    // A passive declare needs no permission: the usual way to check that a queue is there.
    let q = ch
        .queue_declare(
            subscriber_queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare of its queue");
    assert_eq!(q.message_count(), 0);
    let mut events = ch
        .basic_consume(
            subscriber_queue.as_str().into(),
            "tax".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("the tax authority consumes its queue");
    guest
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for key in [
        "medical.enrollment.person-enrolled",
        "medical.collection.contribution-assessed",
    ] {
        let c = guest
            .basic_publish(
                names.events_exchange().as_str().into(),
                key.into(),
                BasicPublishOptions::default(),
                br#"{"assessment":"2026-11"}"#,
                BasicProperties::default(),
            )
            .await
            .expect("publish event")
            .await
            .expect("event confirmed");
        assert!(matches!(c, Confirmation::Ack(_)), "{c:?}");
    }
    let d = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event within the wait")
        .expect("consumer open")
        .expect("delivery");
    assert_eq!(
        d.routing_key.as_str(),
        "medical.collection.contribution-assessed",
        "only the bound events reach the subscriber"
    );
    assert_eq!(d.data, br#"{"assessment":"2026-11"}"#);
    d.acker
        .ack(BasicAckOptions::default())
        .await
        .expect("the tax authority acknowledges");

    // It CAN declare an exclusive server-named queue.
    let reply_ch = tax.create_channel().await.expect("channel");
    let reply_q = reply_ch
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
        .expect("an exclusive server-named queue");
    assert!(reply_q.name().as_str().starts_with("amq.gen-"), "{reply_q:?}");

    // It CAN publish a payment command (confirmed) and get the reply on its own reply queue:
    // the suite's own client, connected as the tax authority.
    let client = CommandClient::connect(
        BrokerConfig {
            url: tax_url.clone(),
            prefix: prefix.clone(),
            timeout_ms: 10_000,
            tls: Default::default(),
        },
        "tax-authority",
    )
    .await
    .expect("a command client as the tax authority (reply queue declared and consumed)");
    let reply = client
        .send(
            &Command::new(
                Line::Social,
                "collection",
                "record-payment",
                &serde_json::json!({ "amount": "120.00" }),
            ),
            WAIT,
        )
        .await
        .expect("the payment command is published and its reply arrives");
    assert_eq!(reply.status, contracts::ReplyStatus::Ok, "{reply:?}");
    let seen = tokio::time::timeout(WAIT, payments.recv())
        .await
        .expect("the fake service got the command")
        .expect("fake service alive");
    assert_eq!(seen, "social.collection.record-payment");
    client.close().await;
    let c = publish(
        tax.create_channel().await.expect("channel"),
        names.commands_exchange(),
        "medical.collection.record-payment",
    )
    .await
    .expect("a plain confirmed publish of the other line's payment");
    assert!(matches!(c, Confirmation::Ack(_)), "{c:?}");

    // It CANNOT ...
    assert_refused(&tax, "consume another service's queue", |ch| {
        let q = foreign.clone();
        async move {
            ch.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    })
    .await;
    assert_refused(&tax, "basic.get from another service's queue", |ch| {
        let q = foreign.clone();
        async move { ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await }
    })
    .await;
    assert_refused(&tax, "publish an enrollment command", |ch| {
        publish(ch, names.commands_exchange(), "medical.enrollment.enroll-person")
    })
    .await;
    assert_refused(&tax, "publish a longer key than the rule allows", |ch| {
        publish(
            ch,
            names.commands_exchange(),
            "social.collection.record-payment.extra",
        )
    })
    .await;
    assert_refused(&tax, "publish to the events exchange", |ch| {
        publish(
            ch,
            names.events_exchange(),
            "medical.collection.contribution-assessed",
        )
    })
    .await;
    assert_refused(&tax, "publish to the control exchange", |ch| {
        publish(ch, names.control_exchange(), "all.freeze")
    })
    .await;
    assert_refused(&tax, "publish through the default exchange", |ch| {
        publish(ch, String::new(), &foreign)
    })
    .await;
    assert_refused(&tax, "declare a named queue", |ch| {
        let q = own_named.clone();
        async move {
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    })
    .await;
    assert_refused(&tax, "re-declare its own queue (not passively)", |ch| {
        let q = subscriber_queue.clone();
        async move {
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                lapin::types::AMQPValue::LongString("quorum".into()),
            );
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
        }
    })
    .await;
    assert_refused(&tax, "bind its queue to more events", |ch| {
        let q = subscriber_queue.clone();
        let ex = names.events_exchange();
        async move {
            ch.queue_bind(
                q.as_str().into(),
                ex.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    })
    .await;
    assert_refused(&tax, "bind a reply queue to the events exchange", |ch| {
        let ex = names.events_exchange();
        async move {
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
                .await?;
            ch.queue_bind(
                q.name().clone(),
                ex.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    })
    .await;
    assert_refused(&tax, "delete its queue", |ch| {
        let q = subscriber_queue.clone();
        async move {
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
        }
    })
    .await;
    assert!(
        tax.status().connected(),
        "refusals close channels, not the connection"
    );

    // Provisioning again updates in place: bindings follow the command line, the password
    // stays, and the tax authority still logs in with it.
    let out = ctl(
        &env,
        &[
            "subscriber",
            "provision",
            NAME,
            "--bind",
            "*.collection.contribution-assessed",
            "--publish",
            PUBLISH_RULE,
        ],
        &[],
    )
    .await;
    assert_exit(&out, 0);
    let summary = text(&out.stdout);
    assert!(summary.contains("(no tags; updated, password kept)"), "{summary}");
    assert!(
        summary.contains("*.collection.arrears-detected  (removed)"),
        "{summary}"
    );
    assert!(!summary.contains("password:"), "{summary}");
    let again = Connection::connect(&tax_url, ConnectionProperties::default())
        .await
        .expect("same password after re-provisioning");
    let _ = again.close(200, "done".into()).await;

    // remove refuses while a message waits, then --force deletes user, queues and
    // connections.
    let c = guest
        .basic_publish(
            names.events_exchange().as_str().into(),
            "social.collection.contribution-assessed".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(matches!(c, Confirmation::Ack(_)), "{c:?}");
    drop(events);
    let _ = ch.close(200, "done".into()).await;
    wait_for("the event to wait in the subscriber queue", WAIT, || async {
        (messaging::parking::depth(&broker, &subscriber_queue).await.ok()? == 1).then_some(())
    })
    .await;
    let out = ctl(&env, &["subscriber", "remove", NAME], &[]).await;
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("--force"), "{}", text(&out.stderr));
    let out = ctl(&env, &["subscriber", "remove", NAME, "--force"], &[]).await;
    assert_exit(&out, 0);
    let removed = text(&out.stdout);
    assert!(
        removed.contains(&format!("deleted user {user} and its permissions")),
        "{removed}"
    );
    assert!(
        removed.contains(&format!("deleted queue {subscriber_queue}\n")),
        "{removed}"
    );
    wait_for("the tax authority's connection to be closed", WAIT, || async {
        (!tax.status().connected()).then_some(())
    })
    .await;
    let refused = Connection::connect(&tax_url, ConnectionProperties::default()).await;
    assert!(refused.is_err(), "the removed user can no longer log in");
    let out = ctl(&env, &["subscriber", "show", NAME], &[]).await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("no subscriber 'tax-authority'"),
        "{}",
        text(&out.stderr)
    );
    // Removing again is not an error: there is nothing left to remove.
    let out = ctl(&env, &["subscriber", "remove", NAME], &[]).await;
    assert_exit(&out, 0);

    let _ = guest.close(200, "done".into()).await;
    broker.close().await;
}

/// The management API as the tests' broker user.
fn api() -> Api {
    let t = amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    Api::new(&api_url(), &t.user, &t.password, WAIT).expect("API URL")
}

/// Deletes a user made by a test, even when the test panics.
struct DeleteUserOnDrop(String);

impl Drop for DeleteUserOnDrop {
    fn drop(&mut self) {
        let user = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let _ = rt.block_on(api().delete_user(&user));
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_subscriber_gets_a_generated_password_and_cannot_publish() {
    const FUND: &str = "pension-fund";
    let env = TestEnv::new();
    let prefix = env.prefix();
    let names = env.names();
    let queue = names.subscriber_queue(FUND);
    env.track_queues(insurancectl::subscriber::queues(&names, FUND));
    let _cleanup = RemoveOnDrop {
        prefix: prefix.clone(),
        name: FUND,
    };

    // No --publish, no --password-env: nothing writable, and a password printed once.
    let out = ctl(
        &env,
        &[
            "subscriber",
            "provision",
            FUND,
            "--bind",
            "*.enrollment.person-enrolled",
        ],
        &[],
    )
    .await;
    assert_exit(&out, 0);
    let summary = text(&out.stdout);
    assert!(summary.contains("             write     ^$\n"), "{summary}");
    let passwords: Vec<&str> = summary
        .lines()
        .filter_map(|l| l.strip_prefix("password:"))
        .map(str::trim)
        .collect();
    assert_eq!(passwords.len(), 1, "{summary}");
    let password = passwords[0];
    assert_eq!(password.len(), insurancectl::subscriber::PASSWORD_LEN);
    assert_eq!(summary.matches(password).count(), 1, "shown once: {summary}");

    let user = format!("{prefix}{FUND}");
    let fund = Connection::connect(&url_as(&user, password), ConnectionProperties::default())
        .await
        .expect("the fund logs in with the generated password");
    let ch = fund.create_channel().await.expect("channel");
    ch.basic_consume(
        queue.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("it consumes its queue");
    // `^$` matches no exchange: the default exchange is checked as `amq.default`.
    assert_refused(&fund, "publish through the default exchange", |ch| {
        publish(ch, String::new(), &queue)
    })
    .await;
    assert_refused(&fund, "publish a command", |ch| {
        publish(ch, names.commands_exchange(), "medical.collection.record-payment")
    })
    .await;
    let _ = fund.close(200, "done".into()).await;

    // A user that is not a subscriber's (it has tags) is neither taken over nor removed.
    let ops = format!("{prefix}ops");
    let _delete_ops = DeleteUserOnDrop(ops.clone());
    let api = api();
    api.put_user_with_password(&ops, &insurancectl::subscriber::generate_password(), "monitoring")
        .await
        .expect("a monitoring user");
    let out = ctl(&env, &["subscriber", "provision", "ops", "--bind", "#"], &[]).await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("already exists with tags [monitoring]"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&env, &["subscriber", "remove", "ops", "--force"], &[]).await;
    assert_exit(&out, 1);
    let vhost = amqp_target(&testkit::amqp_url()).expect("AMQP_URL").vhost;
    let still = api
        .user_info(&ops)
        .await
        .expect("API")
        .expect("the user is still there");
    assert_eq!(still.tags.0, ["monitoring"]);
    assert!(
        api.permissions(&vhost, &ops).await.expect("API").is_none(),
        "and it got no permissions"
    );
    assert!(
        !api.queue_exists(&vhost, &names.subscriber_queue("ops"))
            .await
            .expect("API"),
        "and no queue was declared for it"
    );
}

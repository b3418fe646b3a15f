//! One broker user per service (issue 13 §1): `insurancectl accounts apply --broker` creates
//! them with the grants of the topology (the same `topology export` gives a cluster).
//! Enrollment and collection, each running as its own user, do their work (a command, its
//! reply, the event the other consumes, a data-sharing freeze applied through the shared
//! management-API user), and enrollment's user is refused outside its rights: another
//! service's queue, a routing key it does not own, a freeze order, a queue of another name.
//!
//! Needs the management API (`scripts/servers.sh` enables it).

mod common;

use common::{exit, text};
use contracts::Line;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use messaging::management::{Api, amqp_target};
use testkit::{TestEnv, WAIT, send_command, wait_for};

const SERVICES: [&str; 5] = [
    "enrollment",
    "collection",
    "benefits",
    "card-issuance",
    "notification",
];

fn password(env: &TestEnv, user: &str) -> String {
    format!("pw{}{}", user.replace(['-', '.'], ""), env.id)
}

async fn apply(env: &TestEnv) -> std::process::Output {
    let mut vars: Vec<(String, String)> = SERVICES
        .iter()
        .map(|s| {
            let var = format!("{}_MQ_PASSWORD", s.to_ascii_uppercase().replace('-', "_"));
            (var, password(env, &messaging_user(env, s)))
        })
        .collect();
    vars.push((
        "DATA_SHARING_MQ_PASSWORD".into(),
        password(env, &messaging_user(env, "data-sharing")),
    ));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::ctl_api(env, &["accounts", "apply", "--broker"], &vars).await
}

fn messaging_user(env: &TestEnv, name: &str) -> String {
    format!("{}{name}", env.prefix())
}

/// A service's settings (made before `apply`: the harness makes the same users, with its own
/// passwords) switched to the passwords `apply` set.
fn settings_as(
    env: &TestEnv,
    service: &str,
    mut s: messaging::runtime::ServiceSettings,
) -> messaging::runtime::ServiceSettings {
    let user = messaging_user(env, service);
    s.broker.url = testkit::url_as(&testkit::amqp_url(), &user, &password(env, &user));
    let ds = messaging_user(env, "data-sharing");
    s.messaging.freeze.data_sharing.api_user = Some(ds.clone());
    s.messaging.freeze.data_sharing.api_password = Some(password(env, &ds));
    s.messaging.freeze.tick_ms = 50;
    s
}

#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, lapin::Error>) {
    match result {
        Err(e) if e.to_string().contains("ACCESS_REFUSED") || e.to_string().contains("403") => {}
        other => panic!("{what}: expected ACCESS_REFUSED, got {other:?}"),
    }
}

#[tokio::test]
async fn each_service_works_as_its_own_broker_user_and_is_refused_outside_its_rights() {
    let env = TestEnv::new();
    let names = env.names();
    let mut users: Vec<String> = SERVICES.iter().map(|s| messaging_user(&env, s)).collect();
    users.push(messaging_user(&env, "data-sharing"));
    let _cleanup = common::RemoveUsers(users.clone());
    let (enrollment_settings, collection_settings) = (
        env.service_settings("enrollment"),
        env.service_settings("collection"),
    );
    let out = apply(&env).await;
    let stdout = exit(&out, 0);
    for u in &users {
        assert!(stdout.contains(&format!("user {u} ")), "{stdout}");
    }
    let t = amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    let api = Api::new(&testkit::api_url(), &t.user, &t.password, WAIT).expect("the API");
    let enrollment_user = api
        .user_info(&users[0])
        .await
        .expect("API")
        .expect("enrollment's user");
    assert!(
        enrollment_user.tags.iter().all(String::is_empty),
        "a service user has no tags: {enrollment_user:?}"
    );
    // Safe to run again, keeping the passwords.
    exit(&apply(&env).await, 0);

    // Enrollment and collection, each as its user.
    let enrollment = enrollment::build(enrollment::Settings {
        service: settings_as(&env, "enrollment", enrollment_settings),
        region: "420100".into(),
    })
    .await
    .expect("enrollment starts as its own user");
    let collection = collection::build(collection::Settings {
        service: settings_as(&env, "collection", collection_settings),
        region: "420100".into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .expect("collection starts as its own user");
    let mut services = testkit::services::Services::new();
    services.start(&env, enrollment).start(&env, collection);
    common::both_listening(&env).await;

    let client = env.client().await;
    let enroll = common::enroll_flexible(1, Line::Medical);
    let reply = send_command(&client, &enroll, WAIT).await.expect("a reply");
    assert!(reply.is_ok(), "{reply:?}");
    let pool = env.pool("collection").await;
    wait_for(
        "collection has the person from enrollment's event",
        WAIT,
        || async {
            let c = pool.get().await.ok()?;
            let n: i64 = c
                .query_one("select count(*) from persons", &[])
                .await
                .ok()?
                .get(0);
            (n == 1).then_some(())
        },
    )
    .await;

    // Data sharing through the shared management-API user: a subscriber makes the shovels,
    // a data-sharing freeze of the medical line has the services remove its shovel.
    let _subscriber = common::RemoveSubscribers {
        prefix: env.prefix(),
        names: vec!["accounts-test"],
    };
    let sub = common::ctl_api(
        &env,
        &[
            "subscriber",
            "provision",
            "accounts-test",
            "--bind",
            "#",
            "--password-env",
            "P",
        ],
        &[("P", "accounts-test-password")],
    )
    .await;
    exit(&sub, 0);
    common::hold_medical_data_sharing(&env, "acc-ds", "数据共享暂停").await;
    let medical_shovel = names.data_sharing_shovel(Line::Medical);
    exit(&common::ctl(&env, &["freeze", "lift", "acc-ds"]).await, 0);
    wait_for("and put it back at the lift", WAIT, || async {
        api.shovel(&t.vhost, &medical_shovel)
            .await
            .ok()?
            .is_some()
            .then_some(())
    })
    .await;
    // Enrollment's user outside its rights; each refusal closes its channel.
    let url = testkit::url_as(&testkit::amqp_url(), &users[0], &password(&env, &users[0]));
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("enrollment's user connects");
    let collection_commands = format!("{}collection.medical.commands", env.prefix());
    let ch = conn.create_channel().await.expect("channel");
    refused(
        "consuming collection's command queue",
        ch.basic_consume(
            collection_commands.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
    );
    let ch = conn.create_channel().await.expect("channel");
    refused(
        "declaring a queue of collection's",
        ch.queue_declare(
            format!("{}collection.intruder", env.prefix()).as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
    );
    for (exchange, key, what) in [
        (
            names.events_exchange(),
            "medical.collection.payment-recorded",
            "publishing collection's event",
        ),
        (
            names.control_exchange(),
            "all.freeze.order",
            "publishing a freeze order",
        ),
        (
            names.commands_exchange(),
            "medical.collection.record-payment",
            "sending a command it does not send",
        ),
    ] {
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let published = async {
            ch.basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default(),
            )
            .await?
            .await
        }
        .await;
        // The broker refuses with a channel error; the confirm may already be on its way.
        let outcome = match published {
            Err(e) => Err(e),
            Ok(_) => ch
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|_| ()),
        };
        refused(what, outcome);
    }
    let _ = conn.close(200, "done".into()).await;
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("error"), "{stderr}");

    client.close().await;
    services.stop().await;
}

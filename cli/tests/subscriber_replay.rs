//! A subscriber provisioned after a day's events catches up (issue 13 §5):
//! `subscriber provision NAME --replay-from T` gives it the events since `T` from the events
//! archive, in their original order and each once, then the live ones, with no gap and no
//! duplicate, while enrollments go on during the provisioning, and while an earlier
//! subscriber keeps receiving everything once. A second replay into the same queue is refused.
//!
//! Needs the management API with the shovel plugin (`scripts/servers.sh` enables both).

mod common;

use common::{both_listening, exit, text};
use contracts::Line;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use messaging::client::CommandClient;
use messaging::management::{Api, amqp_target};
use std::collections::{HashMap, HashSet};
use testkit::{TestEnv, WAIT, id_number, send_command, wait_for};

const EARLY: &str = "replay-early";
const LATE: &str = "replay-late";
const BIND: &str = "*.enrollment.person-enrolled";

/// Person `n` enrolled on the medical line when `n` is even, on the social line when odd.
fn line_of(n: u32) -> Line {
    if n.is_multiple_of(2) {
        Line::Medical
    } else {
        Line::Social
    }
}

async fn enroll_all(client: &CommandClient, persons: std::ops::RangeInclusive<u32>) {
    for n in persons {
        let reply = send_command(client, &common::enroll_flexible(n, line_of(n)), WAIT)
            .await
            .expect("a reply");
        assert!(reply.is_ok(), "person {n}: {reply:?}");
    }
}

/// One received event: (routing key, person number, message id).
type Got = (String, u32, String);

/// Takes what waits in `queue` until person `last` has come (or the deadline).
async fn receive_until(env: &TestEnv, queue: &str, last: u32) -> Vec<Got> {
    let numbers: HashMap<String, u32> = (0..=last).map(|n| (id_number(n), n)).collect();
    let mut got: Vec<Got> = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    let broker = env.broker();
    let ch = broker.channel().await.expect("a channel");
    while !got.iter().any(|(_, n, _)| *n == last) {
        assert!(
            std::time::Instant::now() < deadline,
            "{queue}: person {last} never came; got {got:?}"
        );
        match ch.basic_get(queue.into(), BasicGetOptions::default()).await {
            Ok(Some(m)) => {
                let body: serde_json::Value = serde_json::from_slice(&m.delivery.data).expect("JSON");
                let id = body["id_number"].as_str().unwrap_or_default();
                let n = *numbers
                    .get(id)
                    .unwrap_or_else(|| panic!("{queue}: an event of nobody we enrolled: {body}"));
                let message_id = m
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                got.push((m.delivery.routing_key.to_string(), n, message_id));
                m.delivery.ack(BasicAckOptions::default()).await.expect("ack");
            }
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Err(e) => panic!("basic.get on {queue}: {e}"),
        }
    }
    broker.close().await;
    got
}

/// Every person of `expected` exactly once, each line in enrollment order.
#[track_caller]
fn assert_once_in_order(queue: &str, got: &[Got], expected: &[u32]) {
    let numbers: Vec<u32> = got.iter().map(|(_, n, _)| *n).collect();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, expected,
        "{queue}: each person once, nobody else; got {numbers:?}"
    );
    let ids: HashSet<&String> = got.iter().map(|(_, _, id)| id).collect();
    assert_eq!(ids.len(), got.len(), "{queue}: a message id twice: {got:?}");
    for line in Line::BUSINESS {
        let of_line: Vec<u32> = got
            .iter()
            .filter(|(key, _, _)| key.starts_with(&format!("{line}.")))
            .map(|(_, n, _)| *n)
            .collect();
        assert!(
            of_line.iter().all(|n| line_of(*n) == line),
            "{queue}: routing keys keep their line: {got:?}"
        );
        assert!(
            of_line.windows(2).all(|w| w[0] < w[1]),
            "{queue}: the {line} line's events in their original order: {of_line:?}"
        );
    }
}

#[tokio::test]
async fn a_late_subscriber_gets_the_days_events_from_the_archive_then_the_live_ones_each_once() {
    let env = TestEnv::new();
    let names = env.names();
    let services = common::spawn(&env).await;
    both_listening(&env).await;
    let _cleanup = common::RemoveSubscribers {
        prefix: env.prefix(),
        names: vec![EARLY, LATE],
    };

    // A subscriber from the start of the day, for comparison.
    exit(
        &ctl_with(&env, &["subscriber", "provision", EARLY, "--bind", BIND]).await,
        0,
    );
    // Person 0 before the replay's start, persons 1..=12 after it, before the new subscriber.
    let client = env.client().await;
    enroll_all(&client, 0..=0).await;
    let from = chrono::Utc::now();
    enroll_all(&client, 1..=12).await;

    // Provisioned while enrollments go on, from 13 until it has finished: some arrive during
    // the catch-up and some during the switch.
    let stop = tokio_util::sync::CancellationToken::new();
    let during = {
        let other = env.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 12;
            while !stop.is_cancelled() {
                n += 1;
                enroll_all(&other, n..=n).await;
            }
            other.close().await;
            n
        })
    };
    let from_arg = from.to_rfc3339();
    let out = ctl_with(
        &env,
        &[
            "--json",
            "subscriber",
            "provision",
            LATE,
            "--bind",
            BIND,
            "--replay-from",
            &from_arg,
        ],
    )
    .await;
    stop.cancel();
    let last_during = during.await.expect("the enrollments during the provisioning");
    exit(&out, 0);
    let summary = common::json(&out);
    let replayed = &summary["replayed"];
    eprintln!("replayed: {replayed}; enrolled during the provisioning: 13..={last_during}");
    assert!(
        replayed["from_archive"].as_u64().unwrap_or(0) >= 12,
        "persons 1..=12 at least come from the archive: {summary}"
    );
    // Live ones after it.
    let last = last_during + 5;
    enroll_all(&client, last_during + 1..=last).await;

    let late_queue = names.subscriber_queue(LATE);
    let got = receive_until(&env, &late_queue, last).await;
    assert_once_in_order(&late_queue, &got, &(1..=last).collect::<Vec<_>>());
    let early_queue = names.subscriber_queue(EARLY);
    let got_early = receive_until(&env, &early_queue, last).await;
    assert_once_in_order(&early_queue, &got_early, &(0..=last).collect::<Vec<_>>());
    // The replayed ones are the archive's copies of what the early subscriber received live.
    let early_ids: HashSet<&String> = got_early.iter().map(|(_, _, id)| id).collect();
    assert!(
        got.iter().all(|(_, _, id)| early_ids.contains(id)),
        "the same messages (ids) as the live subscriber's"
    );

    // The line shovels untouched; the late subscriber's intake queue and shovel in place, and
    // `subscriber show` says so.
    let t = amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    let api = Api::new(&testkit::api_url(), &t.user, &t.password, WAIT).expect("the API");
    for line in Line::BUSINESS {
        assert!(
            api.shovel(&t.vhost, &names.data_sharing_shovel(line))
                .await
                .expect("API")
                .is_some(),
            "the {line} shovel is there"
        );
    }
    let intake = format!("{late_queue}.intake");
    let shown = ctl_with(&env, &["subscriber", "show", LATE]).await;
    let shown = exit(&shown, 0);
    assert!(
        shown.contains(&format!(
            "  intake     {intake}: 0 message(s); its shovel forwards to the queue"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{}insurance.subscribers {BIND}", env.prefix())),
        "{shown}"
    );

    // A second replay into a queue that receives live events is refused and changes nothing.
    let again = ctl_with(
        &env,
        &[
            "subscriber",
            "provision",
            LATE,
            "--bind",
            BIND,
            "--replay-from",
            &from_arg,
        ],
    )
    .await;
    exit(&again, 1);
    assert!(
        text(&again.stderr).contains("--replay-from is for a new subscriber"),
        "{}",
        text(&again.stderr)
    );
    enroll_all(&client, last + 1..=last + 1).await;
    let after = receive_until(&env, &late_queue, last + 1).await;
    assert_eq!(
        after.iter().map(|(_, n, _)| *n).collect::<Vec<_>>(),
        [last + 1],
        "nothing replayed twice"
    );

    // Removed, it leaves nothing: queue, intake queue, its shovel and exchange.
    let removed = exit(&ctl_with(&env, &["subscriber", "remove", LATE]).await, 0);
    assert!(removed.contains("deleted shovel"), "{removed}");
    for queue in [&intake, &late_queue] {
        assert!(
            !api.queue_exists(&t.vhost, queue).await.expect("API"),
            "queue {queue} is left"
        );
    }
    assert!(
        !api.exchange_exists(&t.vhost, &late_queue).await.expect("API"),
        "exchange {late_queue} is left"
    );
    let shovel = intake_shovel(&env);
    assert!(
        api.shovel(&t.vhost, &shovel).await.expect("API").is_none(),
        "shovel {shovel} is left"
    );

    client.close().await;
    services.stop().await;
}

#[tokio::test]
async fn a_replay_waits_for_a_line_whose_data_sharing_is_frozen_and_changes_nothing_when_it_gives_up() {
    let env = TestEnv::new();
    let names = env.names();
    let services = common::spawn(&env).await;
    both_listening(&env).await;
    let _cleanup = common::RemoveSubscribers {
        prefix: env.prefix(),
        names: vec![EARLY, LATE],
    };
    exit(
        &ctl_with(&env, &["subscriber", "provision", EARLY, "--bind", BIND]).await,
        0,
    );
    common::hold_medical_data_sharing(&env, "ds-medical", "医保数据共享暂停（系统切换）").await;
    let (api, vhost) = common::admin_api();
    let t = amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    assert_eq!(t.vhost, vhost);

    let from = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let out = ctl_with(
        &env,
        &[
            "subscriber",
            "provision",
            LATE,
            "--bind",
            BIND,
            "--replay-from",
            &from,
            "--replay-wait",
            "3",
        ],
    )
    .await;
    exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the replay marker of line(s) medical did not reach the subscribers within 3 s"),
        "{stderr}"
    );
    let queue = names.subscriber_queue(LATE);
    for q in [queue.clone(), format!("{queue}.intake")] {
        assert!(
            !api.queue_exists(&t.vhost, &q).await.expect("API"),
            "queue {q} is left"
        );
    }
    assert!(
        !api.exchange_exists(&t.vhost, &queue).await.expect("API"),
        "exchange {queue} is left"
    );
    let user = format!("{}{LATE}", env.prefix());
    assert!(
        api.user_info(&user).await.expect("API").is_none(),
        "user {user} is left"
    );
    exit(&common::ctl(&env, &["freeze", "lift", "ds-medical"]).await, 0);
    services.stop().await;
}

#[tokio::test]
async fn replay_times_are_checked_before_anything_changes() {
    let env = TestEnv::new();
    for (arg, says) in [
        ("yesterday", "is not an RFC 3339 time"),
        ("2999-01-01T00:00:00Z", "is in the future"),
    ] {
        let out = ctl_with(
            &env,
            &[
                "subscriber",
                "provision",
                LATE,
                "--bind",
                BIND,
                "--replay-from",
                arg,
            ],
        )
        .await;
        exit(&out, 1);
        assert!(text(&out.stderr).contains(says), "{arg}: {}", text(&out.stderr));
    }
    let out = ctl_with(
        &env,
        &[
            "subscriber",
            "provision",
            LATE,
            "--bind",
            BIND,
            "--replay-wait",
            "5",
        ],
    )
    .await;
    exit(&out, 1);
    assert!(
        text(&out.stderr).contains("--replay-from"),
        "{}",
        text(&out.stderr)
    );
    let t = amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    let api = Api::new(&testkit::api_url(), &t.user, &t.password, WAIT).expect("the API");
    let queue = env.names().subscriber_queue(LATE);
    wait_for("nothing declared", WAIT, || async {
        (!api.queue_exists(&t.vhost, &queue).await.ok()?).then_some(())
    })
    .await;
}

/// The late subscriber's intake shovel, by the name the tool gives it.
fn intake_shovel(env: &TestEnv) -> String {
    format!("{}subscriber-{LATE}-intake", env.prefix())
}

/// `ctl` with the management API's address.
async fn ctl_with(env: &TestEnv, args: &[&str]) -> std::process::Output {
    common::ctl_api(env, args, &[]).await
}

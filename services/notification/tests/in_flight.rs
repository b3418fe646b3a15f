//! A message whose submit may have reached the SMSC but whose outcome was never recorded is
//! not sent again blindly: it stays in flight, and the delivery receipt that gives back its
//! `user_message_reference` settles it; only a submit that no receipt ever names is sent again,
//! once the SMSC would have reported it (its validity and a grace are over).
//!
//! - The sender killed between the `submit_sm_resp` and recording it (the process dies: here
//!   a runtime of its own shut down, every task dropped and every connection closed without
//!   a word, while the test holds the lock the recording waits for): after the restart the
//!   SMSC has that message once.
//! - The connection cut after the SMSC took a submit and before its response: once.
//! - A submit lost unread with the connection: no receipt names it; it is sent again after
//!   the wait, and arrives once.

mod common;

use common::*;
use contracts::Line;
use smsc_sim::SimConfig;
use std::sync::Arc;
use std::time::Duration;
use testkit::services::Services;
use testkit::{TestEnv, WAIT, wait_for};

/// The notification service in a runtime of its own, on its own thread, so that it can be
/// killed: [`Doomed::kill`] shuts the runtime down, dropping every task where it stands.
struct Doomed {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    dead: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Doomed {
    async fn start(env: Arc<TestEnv>, sms: notification::sms::SmsSettings) -> Self {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let (dead_tx, dead_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let mut services = Services::new();
                let workers = start_notification(&env, &mut services, sms, notify(100)).await;
                let _ = ready_tx.send(());
                let _ = kill_rx.await;
                // Nothing is stopped: the process "dies" with all of it.
                std::mem::forget(services);
                std::mem::forget(workers);
            });
            rt.shutdown_background();
            let _ = dead_tx.send(());
        });
        ready_rx.await.expect("the doomed service started");
        Doomed {
            kill: Some(kill_tx),
            dead: Some(dead_rx),
        }
    }

    async fn kill(mut self) {
        let _ = self.kill.take().expect("alive").send(());
        self.dead
            .take()
            .expect("alive")
            .await
            .expect("the runtime is gone");
    }
}

/// How a test message stands: its state, attempts and parts recorded.
async fn standing(env: &TestEnv, recipient: &str) -> Option<(String, i32, i64)> {
    let db = env.pool(SERVICE).await.get().await.ok()?;
    let row = db
        .query_opt(
            "select n.state, n.attempts, (select count(*) from sms_parts p where p.notification_id = n.notification_id)
             from notifications n where n.recipient = $1",
            &[&recipient],
        )
        .await
        .ok()??;
    Some((row.get(0), row.get(1), row.get(2)))
}

/// Waits until the message to `recipient` is delivered, then long enough for any resend to
/// have gone out (the sender's wait for an unknown outcome, plus a margin).
async fn delivered_and_settled(env: &TestEnv, recipient: &str, sms: &notification::sms::SmsSettings) {
    wait_for("the message delivered", WAIT, || async {
        standing(env, recipient)
            .await
            .filter(|(s, _, _)| s == "delivered")
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(
        notification::sender::unknown_wait(sms).as_millis() as u64 + 2_000,
    ))
    .await;
}

#[tokio::test]
async fn a_sender_killed_between_the_submit_sm_resp_and_recording_it_sends_that_message_once_after_the_restart()
 {
    let env = Arc::new(TestEnv::new());
    let smsc = smsc(SimConfig::default()).await;
    let mut base = Services::new();
    start_enrollment(&env, &mut base).await;
    let settings = sms(smsc.addr);
    let doomed = Doomed::start(env.clone(), settings.clone()).await;
    let client = env.client().await;

    // The recording of submits waits behind this lock (it writes sms_parts first).
    let pool = env.pool(SERVICE).await;
    let mut holder = pool.get().await.expect("a connection");
    let pid: i32 = holder
        .query_one("select pg_backend_pid()", &[])
        .await
        .expect("a pid")
        .get(0);
    let lock = holder.transaction().await.expect("a transaction");
    lock.execute("lock table sms_parts in exclusive mode", &[])
        .await
        .expect("the lock");

    let phone = testkit::phone(61);
    let recipient = format!("person:{}", testkit::id_number(61));
    enroll(&client, Line::Medical, 61, &["employee_medical"]).await;
    // The SMSC took it and answered; the service got the answer and is recording it.
    texts(&smsc, &phone, 1).await;
    let look = pool.get().await.expect("a connection");
    wait_for("the submit's recording waiting on the lock", WAIT, || async {
        let n: i64 = look
            .query_one(
                "select count(*) from pg_stat_activity
                 where $1 = any(pg_blocking_pids(pid)) and query like 'insert into sms_parts%'",
                &[&pid],
            )
            .await
            .ok()?
            .get(0);
        (n > 0).then_some(())
    })
    .await;

    // The process dies there.
    doomed.kill().await;
    lock.rollback().await.expect("the lock released");
    drop(holder);
    let (state, attempts, parts) = standing(&env, &recipient).await.expect("the message");
    assert_eq!(
        (state.as_str(), attempts, parts),
        ("sending", 1, 0),
        "nothing of the answer was recorded"
    );

    // Restarted: its receipt (unanswered by the dead session, sent again on the new one)
    // names it by reference; it is not sent again.
    let mut notif = Services::new();
    let workers = start_notification(&env, &mut notif, settings.clone(), notify(100)).await;
    delivered_and_settled(&env, &recipient, &settings).await;
    let got = smsc.received_by(&phone);
    assert_eq!(got.len(), 1, "the SMSC had it once: {got:?}");
    assert_eq!(
        standing(&env, &recipient).await,
        Some(("delivered".to_owned(), 1, 1))
    );

    notif.stop().await;
    let _ = workers.await;
    base.stop().await;
    smsc.stop();
}

#[tokio::test]
async fn a_submit_taken_by_the_smsc_whose_response_the_connection_cut_off_is_not_sent_again() {
    let env = TestEnv::new();
    // The first submit is the enrollment's text.
    let smsc = smsc(SimConfig {
        drop_before_response: Some(1),
        ..Default::default()
    })
    .await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let settings = sms(smsc.addr);
    let workers = start_notification(&env, &mut services, settings.clone(), notify(100)).await;
    let client = env.client().await;
    let phone = testkit::phone(62);
    let recipient = format!("person:{}", testkit::id_number(62));
    enroll(&client, Line::Medical, 62, &["employee_medical"]).await;
    texts(&smsc, &phone, 1).await;
    delivered_and_settled(&env, &recipient, &settings).await;
    assert_eq!(smsc.counters().drops, 1);
    let got = smsc.received_by(&phone);
    assert_eq!(got.len(), 1, "the SMSC had it once: {got:?}");
    assert_eq!(
        standing(&env, &recipient).await,
        Some(("delivered".to_owned(), 1, 1))
    );
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

#[tokio::test]
async fn a_submit_lost_with_the_connection_is_sent_again_once_no_receipt_can_name_it() {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig {
        lose_submit: Some(1),
        ..Default::default()
    })
    .await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let settings = sms(smsc.addr);
    let wait = notification::sender::unknown_wait(&settings);
    let workers = start_notification(&env, &mut services, settings.clone(), notify(100)).await;
    let client = env.client().await;
    let phone = testkit::phone(63);
    let recipient = format!("person:{}", testkit::id_number(63));
    let started = std::time::Instant::now();
    enroll(&client, Line::Medical, 63, &["employee_medical"]).await;
    wait_for("the submit lost", WAIT, || async {
        (smsc.counters().drops == 1).then_some(())
    })
    .await;
    // Not sent again while a receipt could still name it.
    tokio::time::sleep(wait / 2).await;
    assert!(smsc.received_by(&phone).is_empty());
    assert_eq!(
        standing(&env, &recipient).await.map(|s| s.0),
        Some("sending".to_owned())
    );
    let got = texts(&smsc, &phone, 1).await;
    assert!(started.elapsed() >= wait, "sent again only after {wait:?}");
    delivered_and_settled(&env, &recipient, &settings).await;
    assert_eq!(smsc.received_by(&phone).len(), 1, "{got:?}");
    assert_eq!(
        standing(&env, &recipient).await,
        Some(("delivered".to_owned(), 2, 1))
    );
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

#[tokio::test]
async fn a_long_message_whose_first_part_was_taken_unanswered_gets_only_its_second_part() {
    let env = TestEnv::new();
    // Submit 1 is the enrollment's text (one part); 2 is the first part of the transfer's.
    let smsc = smsc(SimConfig {
        drop_before_response: Some(2),
        ..Default::default()
    })
    .await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let settings = sms(smsc.addr);
    let workers = start_notification(&env, &mut services, settings.clone(), notify(100)).await;
    let client = env.client().await;
    let phone = testkit::phone(64);
    let id = testkit::id_number(64);
    let person = enroll(&client, Line::Medical, 64, &["employee_medical"]).await;
    texts(&smsc, &phone, 1).await;
    let moved = contracts::enrollment::events::TransferredIn {
        person_id: person,
        certificate_id: "CERT-64".into(),
        id_number: id.clone(),
        insurance_types: vec![contracts::InsuranceType::EmployeeMedical],
        from_region: "370100".into(),
        effective_month: "2024-04".into(),
        line: Line::Medical,
        category: None,
        employer_credit_code: None,
        contribution_months: None,
        pension_account_balance: None,
    };
    publish_twice(
        &env,
        Line::Medical,
        "enrollment",
        "transferred-in",
        &serde_json::to_value(moved).expect("json"),
    )
    .await;
    let got = texts(&smsc, &phone, 2).await;
    assert_eq!(
        got[1],
        "【武汉医保】您好，您的职工基本医疗保险关系已从370100转入本市，转移接续已办结，自2024-04起在本市参保。如有疑问请致电027-87812393。"
    );
    let transfer = wait_for("the transfer's text delivered", WAIT, || async {
        listed(&client, &id)
            .await
            .into_iter()
            .find(|n| n["template"] == "transferred-in@1" && n["state"] == "delivered")
    })
    .await;
    assert_eq!(transfer["parts"], 2, "{transfer}");
    tokio::time::sleep(notification::sender::unknown_wait(&settings) + Duration::from_secs(2)).await;
    let c = smsc.counters();
    assert_eq!(
        (c.submits, c.drops),
        (3, 1),
        "one part for the enrollment, the transfer's two parts once each: {c:?}"
    );
    assert_eq!(smsc.received_by(&phone).len(), 2);
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

//! A delivery receipt is the SMSC's until the service has recorded it: its `deliver_sm_resp`
//! goes out only after the transaction that recorded it committed, so a receipt whose batch
//! is held up (here by a lock the test takes on the message's parts) stays unanswered, the
//! SMSC sends it again after the session is cut, and once the batch can commit the message is
//! delivered before the SMSC hears that the receipt was taken.

mod common;

use common::*;
use contracts::Line;
use smsc_sim::SimConfig;
use testkit::services::Services;
use testkit::{TestEnv, WAIT, wait_for};

/// Waits until the SMSC has had two more `enquire_link`s from the service. The service sends
/// the next one only after the previous one was answered, so the second was written after
/// this call began: whatever the service wrote before (a `deliver_sm_resp`) has reached the
/// SMSC by then, the connection being one ordered stream.
async fn two_more_enquire_links(smsc: &smsc_sim::Smsc) {
    let seen = smsc.counters().enquire_links;
    wait_for("two more enquire_links", WAIT, || async {
        (smsc.counters().enquire_links >= seen + 2).then_some(())
    })
    .await;
}

/// Whether the service's receipts batch is waiting for the lock held by backend `holder`.
async fn receipts_wait_on(db: &deadpool_postgres::Object, holder: i32) -> bool {
    db.query_one(
        "select count(*) from pg_stat_activity
         where $1 = any(pg_blocking_pids(pid)) and query like 'update sms_parts p set state%'",
        &[&holder],
    )
    .await
    .expect("pg_stat_activity")
    .get::<_, i64>(0)
        > 0
}

#[tokio::test]
async fn a_receipt_is_answered_only_after_its_batch_committed_and_one_unanswered_is_sent_again() {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    // Receipts wait at the SMSC until the test has locked the message's parts.
    smsc.hold_receipts(true);
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let id = testkit::id_number(51);
    enroll(&client, Line::Medical, 51, &["employee_medical"]).await;
    texts(&smsc, &testkit::phone(51), 1).await;
    let mut parts = smsc.received_by(&testkit::phone(51))[0].message_ids.clone();
    parts.sort();
    assert!(!parts.is_empty());

    let pool = env.pool(SERVICE).await;
    let look = pool.get().await.expect("a connection");
    wait_for("the parts recorded as submitted", WAIT, || async {
        let n: i64 = look
            .query_one(
                "select count(*) from sms_parts where smsc_id = any($1) and state = 'submitted'",
                &[&parts],
            )
            .await
            .ok()?
            .get(0);
        (n == parts.len() as i64).then_some(())
    })
    .await;
    let mut holder = pool.get().await.expect("a connection");
    let pid: i32 = holder
        .query_one("select pg_backend_pid()", &[])
        .await
        .expect("a pid")
        .get(0);
    let lock = holder.transaction().await.expect("a transaction");
    let locked = lock
        .query(
            "select smsc_id from sms_parts where smsc_id = any($1) for update",
            &[&parts],
        )
        .await
        .expect("the parts locked");
    assert_eq!(locked.len(), parts.len());

    // The receipts go out and reach the service, whose batch now waits for the lock.
    smsc.hold_receipts(false);
    wait_for("the receipts sent", WAIT, || async {
        let (waiting, answered) = (smsc.unanswered_receipts(), smsc.answered_receipts());
        parts
            .iter()
            .all(|p| waiting.contains(p) || answered.contains(p))
            .then_some(())
    })
    .await;
    wait_for("the receipts' batch waiting on the lock", WAIT, || async {
        receipts_wait_on(&look, pid).await.then_some(())
    })
    .await;
    // Answering at once (before recording) would have reached the SMSC by now.
    two_more_enquire_links(&smsc).await;
    assert_eq!(
        smsc.answered_receipts(),
        Vec::<String>::new(),
        "a receipt not yet recorded is not answered"
    );
    assert_eq!(smsc.unanswered_receipts(), parts);

    // The session ends while the batch is held up: nothing can be answered on it; the SMSC
    // takes the receipts back and sends them again on the next session.
    let binds = smsc.counters().binds;
    let resent = smsc.counters().receipts_resent;
    smsc.cut_sessions();
    wait_for(
        "the service bound again and the receipts sent again",
        WAIT,
        || async {
            let c = smsc.counters();
            (c.binds > binds
                && c.receipts_resent >= resent + parts.len() as u64
                && smsc.unanswered_receipts() == parts)
                .then_some(())
        },
    )
    .await;
    two_more_enquire_links(&smsc).await;
    assert!(
        smsc.answered_receipts().is_empty(),
        "{:?}",
        smsc.answered_receipts()
    );
    let states: Vec<String> = look
        .query("select state from sms_parts where smsc_id = any($1)", &[&parts])
        .await
        .expect("the parts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(states.iter().all(|s| s == "submitted"), "{states:?}");

    // The lock goes: the batch commits, then the receipts are answered. When the SMSC has the
    // answers the message is already delivered; the receipt applied twice (the copy of the
    // cut session and the one sent again) changed nothing.
    lock.rollback().await.expect("the lock released");
    let answered = wait_for("every receipt answered", WAIT, || async {
        let a = smsc.answered_receipts();
        parts.iter().all(|p| a.contains(p)).then_some(a)
    })
    .await;
    let row = look
        .query_one(
            "select n.state, n.delivered_at is not null,
                    (select count(*) from sms_parts p where p.notification_id = n.notification_id and p.state = 'delivered')
             from notifications n join sms_parts s on s.notification_id = n.notification_id
             where s.smsc_id = $1",
            &[&parts[0]],
        )
        .await
        .expect("the message");
    let (state, stamped, delivered): (String, bool, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (state.as_str(), stamped, delivered),
        ("delivered", true, parts.len() as i64),
        "recorded before answered ({answered:?})"
    );
    assert!(smsc.unanswered_receipts().is_empty());
    let l = listed(&client, &id).await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["state"], "delivered", "{l:?}");
    drop(holder);

    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

//! Outage announcements from freeze orders: three of them to every person of the line in
//! scope and to no one else; a bulk send that survives throttling, a dropped SMSC connection
//! and a restart of the service in the middle, neither repeating nor skipping anyone.

mod common;

use common::*;
use contracts::Line;
use contracts::freeze::{ControlMessage, FreezeMode, FreezeOrder, FreezeScope};
use serde_json::json;
use smsc_sim::SimConfig;
use std::time::Duration;
use testkit::services::{Services, broadcast_control, wait_control_consumed};
use testkit::{TestEnv, WAIT, wait_for};

fn order(id: &str, lines: Vec<Line>, starts_in: chrono::Duration, lasts: chrono::Duration) -> FreezeOrder {
    let starts = chrono::Utc::now() + starts_in;
    FreezeOrder {
        id: id.into(),
        scope: FreezeScope {
            lines,
            ..Default::default()
        },
        mode: FreezeMode::IntakeOnly,
        starts_at: starts.fixed_offset(),
        ends_at: Some((starts + lasts).fixed_offset()),
        reason: "医保信息系统切换".into(),
        announcement: "医保信息系统切换上线，暂停办理医保业务".into(),
        deadlines: Default::default(),
        redirect_to: None,
    }
}

async fn announcement_progress(
    client: &messaging::client::CommandClient,
    order: &str,
) -> Vec<serde_json::Value> {
    let r = testkit::send(
        client,
        Line::Common,
        SERVICE,
        "list-notifications",
        json!({"announcement": order, "limit": 1000}),
    )
    .await;
    if !r.is_ok() {
        return vec![];
    }
    r.result.expect("a result")["announcements"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_freeze_order_is_announced_before_at_the_start_and_at_the_end_to_its_line_only() {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let medical: Vec<u32> = (21..24).collect();
    let social: Vec<u32> = (31..33).collect();
    for &n in &medical {
        enroll(&client, Line::Medical, n, &["employee_medical"]).await;
    }
    for &n in &social {
        enroll(&client, Line::Social, n, &["pension"]).await;
    }
    for n in medical.iter().chain(&social) {
        texts(&smsc, &testkit::phone(*n), 1).await;
    }
    wait_control_consumed(&env, &[SERVICE, "enrollment"]).await;
    let o = order(
        "medical-cutover",
        vec![Line::Medical],
        chrono::Duration::seconds(3),
        chrono::Duration::seconds(3),
    );
    broadcast_control(&env, &ControlMessage::Order { order: Box::new(o) }).await;

    for &n in &medical {
        let t = texts(&smsc, &testkit::phone(n), 4).await;
        assert!(
            t[1].starts_with("【武汉医保】系统切换公告：医保信息系统切换上线，暂停办理医保业务（"),
            "{t:?}"
        );
        assert!(t[1].ends_with("咨询电话027-87812393。"), "{t:?}");
        assert_eq!(
            t[2],
            "【武汉医保】系统切换已开始：医保信息系统切换上线，暂停办理医保业务。切换期间窗口可收件，恢复后按收件顺序办理。咨询电话027-87812393。"
        );
        assert!(
            t[3].starts_with("【武汉医保】系统切换已完成：医保信息系统切换上线，暂停办理医保业务，现已于"),
            "{t:?}"
        );
    }
    let phases = wait_for("the three phases complete", WAIT, || async {
        let p = announcement_progress(&client, "medical-cutover").await;
        (p.len() == 3 && p.iter().all(|a| a["complete"] == true)).then_some(p)
    })
    .await;
    let names: Vec<&str> = phases
        .iter()
        .map(|a| a["phase"].as_str().expect("a phase"))
        .collect();
    assert_eq!(names, ["before", "start", "end"]);
    for a in &phases {
        assert_eq!(
            a["queued"], 3,
            "each phase to the 3 persons of the medical line: {a}"
        );
    }
    for &n in &social {
        assert_eq!(
            smsc.received_by(&testkit::phone(n)).len(),
            1,
            "the social line is not told"
        );
    }
    for &n in &medical {
        assert_eq!(
            smsc.received_by(&testkit::phone(n)).len(),
            4,
            "each announcement once"
        );
    }
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

#[tokio::test]
async fn a_bulk_announcement_survives_throttling_a_dropped_connection_and_a_restart_without_repeats_or_gaps()
{
    let env = TestEnv::new();
    let smsc = smsc(SimConfig {
        throttle_every: Some(7),
        drop_after: Some(40),
        ..Default::default()
    })
    .await;
    let mut base = Services::new();
    start_enrollment(&env, &mut base).await;
    let mut settings = sms(smsc.addr);
    settings.submits_per_second = 100;
    let mut notif = Services::new();
    let workers = start_notification(&env, &mut notif, settings.clone(), notify(10)).await;
    let client = env.client().await;
    let persons: Vec<u32> = (100..160).collect();
    for &n in &persons {
        enroll(&client, Line::Medical, n, &["employee_medical"]).await;
    }
    for &n in &persons {
        texts(&smsc, &testkit::phone(n), 1).await;
    }
    wait_control_consumed(&env, &[SERVICE]).await;
    // Starts in two hours: only the announcement "before" is due now.
    let o = order(
        "bulk-cutover",
        vec![Line::Medical],
        chrono::Duration::hours(2),
        chrono::Duration::hours(1),
    );
    broadcast_control(&env, &ControlMessage::Order { order: Box::new(o) }).await;
    let announced = || {
        smsc.received()
            .into_iter()
            .filter(|r| r.text.contains("系统切换公告"))
            .count()
    };
    wait_for("a third of the bulk send", WAIT, || async {
        (announced() >= 20).then_some(())
    })
    .await;
    // Restart in the middle: the service stops (its submits in flight are answered and
    // recorded), a new one starts on the same schema.
    notif.stop().await;
    let _ = workers.await;
    let at_restart = announced();
    assert!(
        at_restart < persons.len(),
        "the restart came before the end ({at_restart})"
    );
    let mut notif = Services::new();
    let workers = start_notification(&env, &mut notif, settings, notify(10)).await;

    wait_for("every person announced", Duration::from_secs(60), || async {
        (announced() >= persons.len()).then_some(())
    })
    .await;
    let progress = wait_for("the phase complete", WAIT, || async {
        let p = announcement_progress(&client, "bulk-cutover").await;
        p.first().filter(|a| a["complete"] == true).cloned()
    })
    .await;
    assert_eq!(progress["queued"], 60, "{progress}");
    for &n in &persons {
        let got = smsc.received_by(&testkit::phone(n));
        let a = got.iter().filter(|r| r.text.contains("系统切换公告")).count();
        assert_eq!(a, 1, "person {n}: {got:?}");
        assert_eq!(got.len(), 2, "person {n}: enrollment and announcement, each once");
    }
    let c = smsc.counters();
    assert!(c.throttled > 0, "the SMSC throttled: {c:?}");
    assert!(c.drops >= 1, "the SMSC dropped the connection: {c:?}");
    // Every message ends delivered: receipts of the dropped session came on the next one.
    let pool = env.pool(SERVICE).await;
    let left = || async {
        let db = pool.get().await.expect("a connection");
        db.query(
            "select n.recipient, n.state, n.parts, n.attempts, n.reason,
                    array(select p.smsc_id || '=' || p.state from sms_parts p where p.notification_id = n.notification_id)
             from notifications n where n.state <> 'delivered'",
            &[],
        )
        .await
        .expect("a query")
        .iter()
        .map(|r| {
            format!(
                "{} {} parts={} attempts={} reason={:?} {:?}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i32>(2),
                r.get::<_, i32>(3),
                r.get::<_, Option<String>>(4),
                r.get::<_, Vec<String>>(5)
            )
        })
        .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let l = left().await;
        if l.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered after {WAIT:?}: {l:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    notif.stop().await;
    let _ = workers.await;
    base.stop().await;
    smsc.stop();
}

/// The lines the service holds for `recipient`.
async fn contact_lines(env: &TestEnv, recipient: &str) -> Option<Vec<String>> {
    let db = env.pool(SERVICE).await.get().await.ok()?;
    db.query_opt("select lines from contacts where recipient = $1", &[&recipient])
        .await
        .ok()?
        .map(|r| r.get(0))
}

async fn terminate(client: &messaging::client::CommandClient, line: Line, n: u32, types: &[&str]) {
    let r = testkit::send(
        client,
        line,
        "enrollment",
        "terminate",
        json!({"id_number": testkit::id_number(n), "insurance_types": types,
               "reason": "参保关系终止", "month": "2024-06"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

/// Waits until the service holds exactly `lines` for person `n`.
async fn lines_become(env: &TestEnv, n: u32, lines: &[&str]) {
    let recipient = format!("person:{}", testkit::id_number(n));
    wait_for(&format!("person {n} on {lines:?}"), WAIT, || async {
        (contact_lines(env, &recipient).await? == lines).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_person_terminated_on_a_line_leaves_its_announcements_unless_another_type_or_a_re_enrolment_holds_it()
 {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    // 71 is terminated on the medical line, 72 stays; 73, an employee of employer 76, holds
    // pension and unemployment and loses unemployment only; 74's only social type ends; 75
    // is terminated and enrolls again.
    for n in [71, 72, 75] {
        enroll(&client, Line::Medical, n, &["employee_medical"]).await;
    }
    let employer = testkit::credit_code(76);
    let r = testkit::send(
        &client,
        Line::Social,
        "enrollment",
        "register-employer",
        json!({"credit_code": employer, "name": "武汉示例科技有限公司",
               "contact": {"name": "李四", "phone": testkit::phone(76)}}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let r = testkit::send(
        &client,
        Line::Social,
        "enrollment",
        "enroll-person",
        json!({"id_number": testkit::id_number(73), "name": "参保人73", "phone": testkit::phone(73),
               "category": "employee", "employer_credit_code": employer,
               "insurance_types": ["pension", "unemployment"], "effective_month": "2024-03"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    enroll(&client, Line::Social, 74, &["pension"]).await;
    for n in 71..=76 {
        texts(&smsc, &testkit::phone(n), 1).await;
    }
    // An id older than 71's termination, for an enrolment event that arrives after it.
    let late = uuid::Uuid::now_v7();
    terminate(&client, Line::Medical, 71, &["employee_medical"]).await;
    terminate(&client, Line::Social, 73, &["unemployment"]).await;
    terminate(&client, Line::Social, 74, &["pension"]).await;
    terminate(&client, Line::Medical, 75, &["employee_medical"]).await;
    lines_become(&env, 71, &[]).await;
    lines_become(&env, 74, &[]).await;
    lines_become(&env, 75, &[]).await;
    // Terminations are processed in order per queue; 73's came before 74's on the social line.
    lines_become(&env, 73, &["social"]).await;
    enroll(&client, Line::Medical, 75, &["employee_medical"]).await;
    texts(&smsc, &testkit::phone(75), 2).await;
    lines_become(&env, 75, &["medical"]).await;

    // 71's enrolment delivered late (older than the termination) is told, but does not put
    // the person back on the line.
    let enrolled = contracts::enrollment::events::PersonEnrolled {
        person_id: "late-71".into(),
        id_number: testkit::id_number(71),
        name: "参保人71".into(),
        category: "flexible".into(),
        insurance_types: vec![contracts::InsuranceType::EmployeeMedical],
        employer_credit_code: None,
        effective_month: "2024-03".into(),
        line: Line::Medical,
        minimum_years_met: true,
        phone: Some(testkit::phone(71)),
    };
    publish_event_as(
        &env,
        late,
        "medical.enrollment.person-enrolled",
        "enrollment.person-enrolled.v1",
        &serde_json::to_value(enrolled).expect("json"),
    )
    .await;
    texts(&smsc, &testkit::phone(71), 2).await;
    lines_become(&env, 71, &[]).await;

    wait_control_consumed(&env, &[SERVICE, "enrollment"]).await;
    let o = order(
        "both-lines-cutover",
        vec![Line::Medical, Line::Social],
        chrono::Duration::hours(2),
        chrono::Duration::hours(1),
    );
    broadcast_control(&env, &ControlMessage::Order { order: Box::new(o) }).await;
    let progress = wait_for("the announcement queued to everyone", WAIT, || async {
        let p = announcement_progress(&client, "both-lines-cutover").await;
        p.first().filter(|a| a["complete"] == true).cloned()
    })
    .await;
    assert_eq!(
        progress["queued"], 4,
        "72, 73, 75 and the employer 76 only: {progress}"
    );
    let announced = |n: u32| {
        smsc.received_by(&testkit::phone(n))
            .into_iter()
            .filter(|r| r.text.contains("系统切换公告"))
            .count()
    };
    wait_for("72, 73, 75 and 76 announced", WAIT, || async {
        [72, 73, 75, 76].iter().all(|&n| announced(n) == 1).then_some(())
    })
    .await;
    for n in [71, 74] {
        assert_eq!(announced(n), 0, "person {n} was terminated");
    }
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

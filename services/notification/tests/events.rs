//! Each business event becomes the expected text for the expected recipient, once, through
//! the broker and the SMSC simulator; a phone change redirects the next message; an opt-out
//! is honoured and a required message is still sent; a long Chinese text arrives whole.

mod common;

use common::*;
use contracts::Line;
use contracts::collection::events as ce;
use serde_json::json;
use smsc_sim::SimConfig;
use std::time::Duration;
use testkit::services::Services;
use testkit::{TestEnv, WAIT, wait_for};

#[tokio::test]
async fn an_enrollment_is_told_once_even_when_its_event_comes_twice_and_a_new_phone_gets_the_next() {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.enrollment.person-enrolled").await;

    let id = testkit::id_number(1);
    enroll(&client, Line::Medical, 1, &["employee_medical"]).await;
    let first = texts(&smsc, &testkit::phone(1), 1).await;
    assert_eq!(
        first,
        vec![
            "【武汉医保】参保人1您好，您已参加职工基本医疗保险，自2024-03起生效。如有疑问请致电027-87812393。"
        ]
    );

    // The same event again, with its message id: nothing more is sent.
    let e = tap.expect("medical.enrollment.person-enrolled").await;
    let body = e.body.clone();
    publish_event_as(
        &env,
        e.message_id.parse().expect("a uuid"),
        "medical.enrollment.person-enrolled",
        &e.message_type,
        &body,
    )
    .await;
    // A phone change on the same person's key is handled after the duplicate.
    let new_phone = testkit::phone(90_001);
    let r = testkit::send(
        &client,
        Line::Medical,
        "enrollment",
        "change-contact",
        json!({"id_number": id, "phone": new_phone}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let recipient = format!("person:{id}");
    wait_for("the new phone in the contacts", WAIT, || async {
        (contact_phone(&env, &recipient).await.as_deref() == Some(new_phone.as_str())).then_some(())
    })
    .await;

    // The change is confirmed to the new number; the next message, on the social line, goes
    // there too, with that line's hotline.
    enroll(&client, Line::Social, 1, &["pension"]).await;
    let second = texts(&smsc, &new_phone, 2).await;
    assert_eq!(
        second,
        vec![
            "【武汉医保】参保人1您好，您的参保登记信息（手机号码）已变更。如非本人办理，请及时致电027-87812393。",
            "【武汉人社】参保人1您好，您已参加基本养老保险，自2024-03起生效。如有疑问请致电027-12333。"
        ]
    );
    assert_eq!(
        smsc.received_by(&testkit::phone(1)).len(),
        1,
        "the duplicate sent nothing"
    );

    // The listing shows all three, delivered (the receipts came back).
    wait_for("all delivered", WAIT, || async {
        let l = listed(&client, &id).await;
        (l.len() == 3 && l.iter().all(|n| n["state"] == "delivered")).then_some(())
    })
    .await;
    let l = listed(&client, &id).await;
    assert_eq!(l[0]["template"], "person-enrolled@1");
    assert_eq!(l[1]["template"], "contact-changed@1");
    assert_eq!(l[2]["phone"], new_phone.as_str());

    // The operator's view: insurancectl notifications list --person ID.
    let (amqp, prefix) = (testkit::amqp_url(), env.prefix());
    let report = insurancectl::run(
        ctl_args(&amqp, &prefix, &["notifications", "list", "--person", &id]),
        &mut std::io::empty(),
    )
    .await
    .expect("insurancectl runs");
    assert_eq!(report.code, 0, "{report:?}");
    assert!(report.stdout.contains("delivered"), "{}", report.stdout);
    assert!(report.stdout.contains("person-enrolled@1"), "{}", report.stdout);
    assert!(report.stdout.contains(&new_phone), "{}", report.stdout);
    let bad = insurancectl::run(
        ctl_args(
            &amqp,
            &prefix,
            &["notifications", "list", "--announcement", "no-such-order"],
        ),
        &mut std::io::empty(),
    )
    .await
    .expect("insurancectl runs");
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stdout
            .contains("no announcement for freeze order 'no-such-order'"),
        "{}",
        bad.stdout
    );

    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

#[tokio::test]
async fn contributions_settlements_cards_and_held_requests_each_have_their_text_and_opt_outs_spare_only_reminders()
 {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let (id1, id2) = (testkit::id_number(11), testkit::id_number(12));
    let (phone1, phone2) = (testkit::phone(11), testkit::phone(12));
    let p1 = enroll(&client, Line::Medical, 11, &["employee_medical"]).await;
    let p2 = enroll(&client, Line::Medical, 12, &["employee_medical"]).await;
    texts(&smsc, &phone1, 1).await;
    texts(&smsc, &phone2, 1).await;

    // Opting out: reminders can be, service messages cannot.
    let opt = |category: &str, id: &str| {
        testkit::send(
            &client,
            Line::Common,
            SERVICE,
            "set-opt-out",
            json!({"id_number": id, "category": category, "opted_out": true}),
        )
    };
    let refused = opt("service", &id1).await;
    assert_eq!(
        refused.error_code(),
        Some(contracts::ErrorCode::InvalidField),
        "{refused:?}"
    );
    assert!(
        refused
            .error
            .as_ref()
            .expect("an error")
            .message
            .contains("cannot be opted out")
    );
    let bad = opt("marketing", &id1).await;
    assert_eq!(
        bad.error_code(),
        Some(contracts::ErrorCode::InvalidField),
        "{bad:?}"
    );
    let bad_id = opt("reminder", "420102199001011234").await;
    assert_eq!(
        bad_id.error_code(),
        Some(contracts::ErrorCode::InvalidIdNumber),
        "{bad_id:?}"
    );
    assert!(opt("reminder", &id1).await.is_ok());

    // Wuhan, March 2022: month M is paid within M, by 03-24 (the last 5 working days are
    // 03-25 to 03-31). The reminder is due 3 days before, at 09:00 — still ahead only if the
    // deadline is; this one is in the future so that the reminder is kept.
    let assessed = |payer: &str, assessment: &str| ce::ContributionAssessed {
        assessment_id: assessment.into(),
        run_id: "run-1".into(),
        kind: "regular".into(),
        payer_kind: "flexible".into(),
        payer_id: payer.into(),
        month: "2099-03".into(),
        lines: vec![],
        amount: "133.33".into(),
        total_due: "133.33".into(),
        deadline: chrono::NaiveDate::from_ymd_opt(2099, 3, 24).expect("a date"),
        line: Line::Medical,
        batch_debit: false,
    };
    for (p, a) in [(&p1, "a-1"), (&p2, "a-2")] {
        publish_event(
            &env,
            Line::Medical,
            "collection",
            "contribution-assessed",
            "collection.contribution-assessed.v1",
            &serde_json::to_value(assessed(p, a)).expect("json"),
        )
        .await;
    }
    let t1 = texts(&smsc, &phone1, 2).await;
    assert_eq!(
        t1[1],
        "【武汉医保】您2099-03应缴社会保险费133.33元，请于2099-03-24前缴纳。如有疑问请致电027-87812393。"
    );
    texts(&smsc, &phone2, 2).await;
    wait_for("the reminders decided", WAIT, || async {
        let l1 = listed(&client, &id1).await;
        let l2 = listed(&client, &id2).await;
        let r1 = l1.iter().find(|n| n["template"] == "contribution-due@1")?.clone();
        let r2 = l2.iter().find(|n| n["template"] == "contribution-due@1")?.clone();
        Some((r1, r2))
    })
    .await;
    let reminder = |l: &[serde_json::Value]| {
        l.iter()
            .find(|n| n["template"] == "contribution-due@1")
            .expect("a reminder")["state"]
            .clone()
    };
    assert_eq!(reminder(&listed(&client, &id1).await), "opted-out");
    assert_eq!(
        reminder(&listed(&client, &id2).await),
        "queued",
        "not before 2099-03-21 09:00"
    );

    // Paid in full: the receipt is told and the reminder is no longer due.
    let paid = ce::PaymentRecorded {
        assessment_id: "a-2".into(),
        payer_kind: "flexible".into(),
        payer_id: p2.clone(),
        month: "2099-03".into(),
        amount: "133.33".into(),
        paid_at: chrono::DateTime::parse_from_rfc3339("2099-03-20T10:00:00+08:00").expect("a time"),
        tax_receipt_no: "TAX-0001".into(),
        channel: "bank".into(),
        paid_total: "133.33".into(),
        outstanding: "0.00".into(),
        line: Line::Medical,
        on_time: Some(true),
    };
    publish_event(
        &env,
        Line::Medical,
        "collection",
        "payment-recorded",
        "collection.payment-recorded.v1",
        &serde_json::to_value(paid).expect("json"),
    )
    .await;
    let t2 = texts(&smsc, &phone2, 3).await;
    assert_eq!(
        t2[2],
        "【武汉医保】已收到您2099-03社会保险费133.33元（税票号TAX-0001），尚欠0.00元。如有疑问请致电027-87812393。"
    );
    wait_for("the reminder cancelled", WAIT, || async {
        (reminder(&listed(&client, &id2).await) == "cancelled").then_some(())
    })
    .await;

    // Arrears (Wuhan: benefits affected from 2022-04-01, "4月1日起"), and one the system caused.
    let arrears = |system_caused: bool, assessment: &str| ce::ArrearsDetected {
        assessment_id: assessment.into(),
        payer_kind: "flexible".into(),
        payer_id: p1.clone(),
        month: "2022-03".into(),
        outstanding: "133.33".into(),
        deadline: chrono::NaiveDate::from_ymd_opt(2022, 3, 24).expect("a date"),
        persons: vec![p1.clone()],
        line: Line::Medical,
        benefits_affected_from: Some(chrono::NaiveDate::from_ymd_opt(2022, 4, 1).expect("a date")),
        system_caused,
    };
    for (caused, a) in [(false, "a-3"), (true, "a-4")] {
        publish_event(
            &env,
            Line::Medical,
            "collection",
            "arrears-detected",
            "collection.arrears-detected.v1",
            &serde_json::to_value(arrears(caused, a)).expect("json"),
        )
        .await;
    }
    let t1 = texts(&smsc, &phone1, 4).await;
    assert!(t1[2..].contains(
        &"【武汉医保】您2022-03的社会保险费尚欠133.33元，缴费期限为2022-03-24。如未及时补缴，自2022-04-01起影响医保待遇。如有疑问请致电027-87812393。".to_owned()
    ), "{t1:?}");
    assert!(
        t1[2..].iter().any(|t| t.contains("因系统原因造成，不影响待遇。")),
        "{t1:?}"
    );

    // A settlement at a hospital (psn_no is the person's enrollment id).
    let settled = json!({
        "setl_id": "S1", "msgid": "M1", "mdtrt_id": "D1", "psn_no": p1, "insutype": "310",
        "fixmedins_code": "H42010000001", "setl_time": "2024-03-05T10:30:00+08:00",
        "medfee_sumamt": "1000.00", "fund_pay_sumamt": "720.00", "hifp_pay": "720.00", "hifob_pay": "0.00",
        "hifmi_pay": "0.00", "acct_pay": "200.00", "acct_mulaid_pay": "0.00", "psn_cash_pay": "80.00"
    });
    publish_event(
        &env,
        Line::Medical,
        "benefits",
        "settlement-completed",
        "benefits.settlement-completed.v1",
        &settled,
    )
    .await;
    let t1 = texts(&smsc, &phone1, 5).await;
    assert_eq!(
        t1[4],
        "【武汉医保】您于2024-03-05 10:30在定点机构H42010000001结算医疗费用1000.00元，其中统筹基金支付720.00元，个人账户支付200.00元，个人现金支付80.00元。如有疑问请致电027-87812393。"
    );

    // A reimbursement claim: documents needed, then paid (the steps in between say nothing).
    let claim = |status: &str, reason: Option<&str>| {
        json!({"claim_id": "01a24e15-d027-7610-85ba-775b00dfea8f", "psn_no": p1, "insutype": "310",
               "kind": "outpatient", "status": status, "reason": reason, "medfee_sumamt": "1200.00",
               "amount": "250.00", "at": "2024-05-20T10:00:00+08:00"})
    };
    for (status, reason) in [
        ("documents-needed", Some("请邮寄发票原件")),
        ("under-review", None),
        ("approved", None),
        ("paid", None),
    ] {
        publish_event(
            &env,
            Line::Medical,
            "benefits",
            "claim-status-changed",
            "benefits.claim-status-changed.v1",
            &claim(status, reason),
        )
        .await;
    }
    let t1 = texts(&smsc, &phone1, 7).await;
    assert_eq!(
        t1[5..],
        [
            "【武汉医保】您申请的门诊医疗费用报销（受理号00DFEA8F）需补充材料：请邮寄发票原件。请尽快提交，如有疑问请致电027-87812393。",
            "【武汉医保】您申请的门诊医疗费用报销（受理号00DFEA8F）已办结，报销金额250.00元已支付至您的社会保障卡金融账户。如有疑问请致电027-87812393。",
        ]
    );

    // The card: ready for pick-up, and a failure with what to do.
    let card = |name: &str, state: &str, reason: Option<&str>, action: &str| {
        json!({"application_id": "app-1", "id_number": id1, "kind": "first", "step": name, "state": state,
               "in_production": false, "insurance_types": ["employee_medical"], "lines": ["medical"],
               "name": "参保人11", "bank": "建设银行青山支行", "reason": reason, "action": action, "attempt": 1,
               "occurred_at": "2024-03-06T09:00:00+08:00"})
    };
    publish_event(
        &env,
        Line::Common,
        "card-issuance",
        "bank-account-failed",
        "card-issuance.bank-account-failed.v1",
        &card(
            "bank-account-failed",
            "failed",
            Some("身份信息核验未通过"),
            "请携带身份证到社保经办窗口核实信息。",
        ),
    )
    .await;
    let t1 = texts(&smsc, &phone1, 8).await;
    assert_eq!(
        t1[7],
        "【武汉人社】参保人11您好，您的社会保障卡申领未能办结：身份信息核验未通过。请携带身份证到社保经办窗口核实信息。如有疑问请致电027-12333。"
    );
    publish_event(
        &env,
        Line::Common,
        "card-issuance",
        "card-arrived",
        "card-issuance.card-arrived.v1",
        &card("card-arrived", "in-progress", None, ""),
    )
    .await;
    let t1 = texts(&smsc, &phone1, 9).await;
    assert!(t1[8].contains("已制作完成并送达建设银行青山支行"), "{t1:?}");

    // A request held during a freeze and processed at thaw: its outcome, by receipt number.
    let held = json!({
        "receipt": {"id": "R-0001", "received_at": "2021-12-24T09:15:00+08:00"},
        "service": "enrollment", "line": "medical", "command": "enroll-person",
        "message_id": uuid::Uuid::now_v7(), "processed_at": "2021-12-29T08:30:00+08:00",
        "reply": {"status": "ok", "result": {}}, "subject": format!("person:{id2}")
    });
    publish_event(
        &env,
        Line::Medical,
        "enrollment",
        "deferred-request-processed",
        "freeze.deferred-request-processed.v1",
        &held,
    )
    .await;
    let t2 = texts(&smsc, &phone2, 4).await;
    assert_eq!(
        t2[3],
        "【武汉医保】您于2021-12-24 09:15在系统切换期间提交的“个人参保登记”业务（回执号R-0001）已于2021-12-29 08:30办理：办理成功。如有疑问请致电027-87812393。"
    );

    // A transfer-in completed (Jinan tells the person by SMS when it is): from Jinan (370100).
    let moved = contracts::enrollment::events::TransferredIn {
        person_id: p2.clone(),
        certificate_id: "CERT-1".into(),
        id_number: id2.clone(),
        insurance_types: vec![contracts::InsuranceType::EmployeeMedical],
        from_region: "370100".into(),
        effective_month: "2024-04".into(),
        line: Line::Medical,
        category: None,
        employer_credit_code: None,
        contribution_months: None,
        pension_account_balance: None,
    };
    publish_event(
        &env,
        Line::Medical,
        "enrollment",
        "transferred-in",
        "enrollment.transferred-in.v1",
        &serde_json::to_value(moved).expect("json"),
    )
    .await;
    let t2 = texts(&smsc, &phone2, 5).await;
    assert_eq!(
        t2[4],
        "【武汉医保】您好，您的职工基本医疗保险关系已从370100转入本市，转移接续已办结，自2024-04起在本市参保。如有疑问请致电027-87812393。"
    );

    // Every message above is long Chinese text: each arrived whole, most of them in 2 parts.
    let long = smsc.received_by(&phone1);
    assert!(long.iter().any(|r| r.parts >= 2), "{long:?}");
    assert!(
        long.iter().all(|r| r.text.ends_with("。")),
        "no part lost or reordered"
    );

    // Batch debit (a flexible worker with a bank agreement): the deadline is the debit day,
    // and the reminder asks for the funds on the card before it.
    let mut debit = assessed(&p2, "a-3");
    debit.month = "2099-04".into();
    debit.deadline = chrono::NaiveDate::from_ymd_opt(2099, 4, 20).expect("a date");
    debit.batch_debit = true;
    publish_event(
        &env,
        Line::Medical,
        "collection",
        "contribution-assessed",
        "collection.contribution-assessed.v1",
        &serde_json::to_value(debit).expect("json"),
    )
    .await;
    let due = wait_for("the batch-debit reminder decided", WAIT, || async {
        listed(&client, &id2)
            .await
            .into_iter()
            .find(|n| n["template"] == "contribution-due-debit@1")
    })
    .await;
    assert_eq!(
        (&due["state"], &due["text"]),
        (
            &json!("queued"),
            &json!(
                "【武汉医保】温馨提示：您2099-04的社会保险费133.33元将于2099-04-20由银行批量代扣，请在此前确保社保卡金融账户余额充足，以免扣款失败影响待遇。退订回T。"
            )
        )
    );

    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

fn ctl_args(amqp: &str, prefix: &str, args: &[&str]) -> insurancectl::Cli {
    let mut argv = vec!["insurancectl", "--amqp-url", amqp, "--prefix", prefix];
    argv.extend_from_slice(args);
    <insurancectl::Cli as clap::Parser>::parse_from(argv)
}

#[tokio::test]
async fn a_number_the_smsc_cannot_deliver_to_ends_failed_with_the_receipt_s_reason() {
    let env = TestEnv::new();
    let unreachable = testkit::phone(41);
    let smsc = smsc(SimConfig {
        fail_numbers: vec![unreachable.clone()],
        ..Default::default()
    })
    .await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    enroll(&client, Line::Medical, 41, &["employee_medical"]).await;
    enroll(&client, Line::Medical, 42, &["employee_medical"]).await;
    let states = wait_for("both settled by their receipts", WAIT, || async {
        let a = listed(&client, &testkit::id_number(41)).await;
        let b = listed(&client, &testkit::id_number(42)).await;
        let final_ = |l: &[serde_json::Value]| {
            l.first()
                .filter(|n| n["state"] == "failed" || n["state"] == "delivered")
                .cloned()
        };
        Some((final_(&a)?, final_(&b)?))
    })
    .await;
    assert_eq!(states.0["state"], "failed", "{states:?}");
    assert_eq!(states.0["reason"], "stat:UNDELIV err:001", "{states:?}");
    assert_eq!(states.1["state"], "delivered", "{states:?}");
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

/// The other events that concern a person (issue 12 §1, every business event has a text):
/// each the expected text to the expected phone, once although delivered twice; the ones
/// that say nothing (a death, a person's own account paying their own settlement) send nothing.
#[tokio::test]
async fn every_other_change_of_a_person_s_insurance_money_or_card_is_told_once() {
    use contracts::InsuranceType::EmployeeMedical;
    use contracts::benefits::events as be;
    use contracts::enrollment::{commands as ec, events as ee};
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("a time");
    let medical = |service: &'static str, name: &'static str| (Line::Medical, service, name);
    let mut p = std::collections::BTreeMap::new();
    for n in 51..=57 {
        p.insert(n, enroll(&client, Line::Medical, n, &["employee_medical"]).await);
        texts(&smsc, &testkit::phone(n), 1).await;
    }

    // A contact change on a person of both lines: enrollment publishes it on each line; one
    // text, to the new number.
    enroll(&client, Line::Social, 51, &["pension"]).await;
    texts(&smsc, &testkit::phone(51), 2).await;
    let new_phone = testkit::phone(90_051);
    let r = testkit::send(
        &client,
        Line::Medical,
        "enrollment",
        "change-contact",
        json!({"id_number": testkit::id_number(51), "phone": new_phone}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        texts(&smsc, &new_phone, 1).await,
        [
            "【武汉医保】参保人51您好，您的参保登记信息（手机号码）已变更。如非本人办理，请及时致电027-87812393。"
        ]
    );

    // Enrollment: suspended; terminated for a death (nothing); transferred out.
    let status = |n: u32, reason: &str, month: &str| ee::EnrollmentStatusChanged {
        person_id: p[&n].clone(),
        id_number: testkit::id_number(n),
        insurance_types: vec![EmployeeMedical],
        reason: reason.into(),
        month: month.into(),
        line: Line::Medical,
    };
    let ph52 = testkit::phone(52);
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph52,
            1,
            medical("enrollment", "enrollment-suspended"),
            &v(&ee::EnrollmentSuspended(status(52, "停保申请", "2024-05")))
        )
        .await,
        "【武汉医保】您好，您的职工基本医疗保险自2024-05起暂停参保（停保申请）。如有疑问请致电027-87812393。"
    );
    publish_twice(
        &env,
        Line::Medical,
        "enrollment",
        "enrollment-terminated",
        &v(&ee::EnrollmentTerminated(status(52, "死亡", "2024-06"))),
    )
    .await;
    let out = ee::TransferredOut {
        person_id: p[&52].clone(),
        certificate: ec::ParticipationCertificate {
            certificate_id: "CERT-52".into(),
            id_number: testkit::id_number(52),
            name: "参保人52".into(),
            insurance_types: vec![EmployeeMedical],
            from_region: "420100".into(),
            to_region: "370100".into(),
            contribution_history_ref: "collection:52".into(),
            issued_at: time("2024-06-01T09:00:00+08:00"),
            contribution_months: None,
            pension_account_balance: None,
        },
        line: Line::Medical,
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph52,
            2,
            medical("enrollment", "transferred-out"),
            &v(&out)
        )
        .await,
        "【武汉医保】您好，您的职工基本医疗保险关系转出至370100已办结（参保凭证号CERT-52），请持凭证到转入地办理转入手续。如有疑问请致电027-87812393。"
    );

    // Removed by the employer (named from its registration), then terminated.
    let code = testkit::credit_code(53);
    let registered = ee::EmployerRegistered {
        employer_id: "e-53".into(),
        credit_code: code.clone(),
        name: "武汉测试有限公司".into(),
        line: Line::Medical,
        contact_phone: None,
    };
    publish_twice(
        &env,
        Line::Medical,
        "enrollment",
        "employer-registered",
        &v(&registered),
    )
    .await;
    let ph53 = testkit::phone(53);
    let removed = ee::StaffRemoved {
        employer_credit_code: code.clone(),
        persons: vec![ee::StaffPerson {
            person_id: p[&53].clone(),
            id_number: testkit::id_number(53),
            phone: None,
        }],
        insurance_types: vec![EmployeeMedical],
        month: "2024-06".into(),
        line: Line::Medical,
    };
    wait_for("the employer known", WAIT, || async {
        let db = env.pool(SERVICE).await.get().await.ok()?;
        db.query_opt(
            "select 1 from contacts where recipient = $1",
            &[&format!("employer:{code}")],
        )
        .await
        .ok()?
    })
    .await;
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph53,
            1,
            medical("enrollment", "staff-removed"),
            &v(&removed)
        )
        .await,
        "【武汉医保】您好，武汉测试有限公司已为您办理职工基本医疗保险减员，自2024-06起暂停参保缴费。如有疑问请致电027-87812393。"
    );
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph53,
            2,
            medical("enrollment", "enrollment-terminated"),
            &v(&ee::EnrollmentTerminated(status(53, "迁出本市", "2024-07")))
        )
        .await,
        "【武汉医保】您好，您的职工基本医疗保险自2024-07起终止参保（迁出本市）。如有疑问请致电027-87812393。"
    );

    // Collection: the year's base, an overpayment, arrears cleared, a failed batch debit.
    let ph54 = testkit::phone(54);
    let base = ce::BaseDetermined {
        person_id: p[&54].clone(),
        id_number: testkit::id_number(54),
        year: 2024,
        bases: vec![ce::DeterminedBase {
            insurance_type: EmployeeMedical,
            base: "5000.00".into(),
            source: contracts::collection::commands::BaseSource::PreviousYearAverage,
            clamp: contracts::collection::commands::BaseClamp::None,
        }],
        line: Line::Medical,
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph54,
            1,
            medical("collection", "base-determined"),
            &v(&base)
        )
        .await,
        "【武汉医保】您2024年度的社会保险缴费基数已核定：职工基本医疗保险5000.00元。如有疑问请致电027-87812393。"
    );
    let over = ce::OverpaymentDetected {
        assessment_id: "a-54".into(),
        payer_kind: "flexible".into(),
        payer_id: p[&54].clone(),
        month: "2024-03".into(),
        excess: "20.00".into(),
        tax_receipt_no: "TAX-0054".into(),
        line: Line::Medical,
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph54,
            2,
            medical("collection", "overpayment-detected"),
            &v(&over)
        )
        .await,
        "【武汉医保】您2024-03的社会保险费多缴20.00元（税票号TAX-0054），可申请退还。如有疑问请致电027-87812393。"
    );
    let cleared = ce::ArrearsCleared {
        assessment_id: "a-54b".into(),
        payer_kind: "flexible".into(),
        payer_id: p[&54].clone(),
        month: "2024-02".into(),
        persons: vec![p[&54].clone()],
        cleared_at: time("2024-03-10T15:00:00+08:00"),
        line: Line::Medical,
        paid_on_time: false,
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph54,
            3,
            medical("collection", "arrears-cleared"),
            &v(&cleared)
        )
        .await,
        "【武汉医保】您2024-02的社会保险费欠费已于2024-03-10 15:00补缴，相关待遇按规定恢复。如有疑问请致电027-87812393。"
    );
    let debit = ce::DebitFailed {
        batch_id: "debit-2024-04".into(),
        assessment_id: "a-54c".into(),
        person_id: p[&54].clone(),
        amount: "133.33".into(),
        reason: "余额不足".into(),
        line: Line::Medical,
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph54,
            4,
            medical("collection", "debit-failed"),
            &v(&debit)
        )
        .await,
        "【武汉医保】您的社会保险费133.33元银行批量代扣未成功：余额不足。请尽快通过其他方式缴纳，以免影响待遇。如有疑问请致电027-87812393。"
    );

    // Benefits: a settlement reversed; the account paying its own settlement (nothing) and a
    // relative's care (told to the holder); a reimbursement the bank could not pay.
    let ph55 = testkit::phone(55);
    let cancelled = be::SettlementCancelled {
        setl_id: "S55".into(),
        msgid: "M55".into(),
        mdtrt_id: "D55".into(),
        psn_no: p[&55].clone(),
        insutype: "310".into(),
        fixmedins_code: "H42010000001".into(),
        how: "reversal".into(),
        medfee_sumamt: "1000.00".into(),
        fund_pay_sumamt: "720.00".into(),
        acct_pay: "200.00".into(),
        acct_mulaid_pay: "0.00".into(),
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph55,
            1,
            medical("benefits", "settlement-cancelled"),
            &v(&cancelled)
        )
        .await,
        "【武汉医保】您在定点机构H42010000001的医疗费用结算（1000.00元）已冲正，原统筹基金支付720.00元、个人账户支付200.00元已按原渠道退回。如有疑问请致电027-87812393。"
    );
    let debited = |kind: &str, beneficiary: u32| be::AccountDebited {
        psn_no: p[&55].clone(),
        beneficiary_psn_no: p[&beneficiary].clone(),
        setl_id: "S56".into(),
        kind: kind.into(),
        amount: "50.00".into(),
        balc: "150.00".into(),
    };
    publish_twice(
        &env,
        Line::Medical,
        "benefits",
        "account-debited",
        &v(&debited("settlement", 55)),
    )
    .await;
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph55,
            2,
            medical("benefits", "account-debited"),
            &v(&debited("mutual-aid", 56))
        )
        .await,
        "【武汉医保】您的个人账户通过家庭共济为参保人56支付医疗费用50.00元，账户余额150.00元。如非本人授权，请致电027-87812393。"
    );
    let claim = be::ClaimStatusChanged {
        claim_id: "01a24e15-d027-7610-85ba-775b00dfea8f".into(),
        psn_no: p[&55].clone(),
        insutype: "310".into(),
        kind: "inpatient".into(),
        status: "payment-failed".into(),
        reason: Some("银行账户已注销".into()),
        medfee_sumamt: "8000.00".into(),
        amount: "3000.00".into(),
        at: time("2024-05-20T10:00:00+08:00"),
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph55,
            3,
            medical("benefits", "claim-status-changed"),
            &v(&claim)
        )
        .await,
        "【武汉医保】您申请的住院医疗费用报销（受理号00DFEA8F）报销金额3000.00元未能支付至您的社会保障卡金融账户：银行账户已注销。请核实账户状态，如有疑问请致电027-87812393。"
    );

    // The card: a data error (with what to do), a loss report and its lifting, a replacement
    // and a renewal.
    let ph57 = testkit::phone(57);
    let card = |step: &str, state: &str, reason: Option<&str>, action: &str| {
        json!({"application_id": "app-57", "id_number": testkit::id_number(57), "kind": "first", "step": step,
               "state": state, "in_production": false, "insurance_types": ["employee_medical"],
               "lines": ["medical"], "name": "参保人57", "bank": "工商银行", "reason": reason, "action": action,
               "attempt": 1, "occurred_at": "2024-03-06T09:00:00+08:00"})
    };
    let common = |name: &'static str| (Line::Common, "card-issuance", name);
    for (n, (name, body, expected)) in [
        (
            "card-data-error-reported",
            card(
                "card-data-error",
                "failed",
                Some("姓名有误"),
                "请携带身份证到经办窗口更正。",
            ),
            "【武汉人社】参保人57您好，您的社会保障卡申领未能办结：姓名有误。请携带身份证到经办窗口更正。如有疑问请致电027-12333。",
        ),
        (
            "card-loss-reported",
            card("loss-reported", "lost-temporarily", None, ""),
            "【武汉人社】参保人57您好，您的社会保障卡已临时挂失，挂失期间暂停使用。如非本人办理，请立即致电027-12333。",
        ),
        (
            "card-loss-lifted",
            card("loss-lifted", "activated", None, ""),
            "【武汉人社】参保人57您好，您的社会保障卡已解除挂失，恢复正常使用。如非本人办理，请立即致电027-12333。",
        ),
        (
            "card-replaced",
            card("replaced", "in-progress", None, ""),
            "【武汉人社】参保人57您好，您的社会保障卡补办申请已受理，新卡制作完成后将另行通知领取。如有疑问请致电027-12333。",
        ),
        (
            "card-renewed",
            card("renewed", "in-progress", None, ""),
            "【武汉人社】参保人57您好，您的社会保障卡换领申请已受理，新卡制作完成后将另行通知领取。如有疑问请致电027-12333。",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            told_once(&env, &smsc, &ph57, n + 1, common(name), &body).await,
            expected
        );
    }

    // Once each: nothing more arrived for anyone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts: Vec<(u32, usize)> = (51..=57)
        .map(|n| (n, smsc.received_by(&testkit::phone(n)).len()))
        .collect();
    assert_eq!(
        counts,
        [(51, 2), (52, 3), (53, 3), (54, 5), (55, 4), (56, 1), (57, 6)]
    );
    assert_eq!(smsc.received_by(&new_phone).len(), 1);
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

/// An event as JSON.
fn v<T: serde::Serialize>(event: &T) -> serde_json::Value {
    serde_json::to_value(event).expect("json")
}

//! The benefits service's social-line benefits (retirement, awards, the monthly payments) and
//! filings (备案), through the broker and the SMSC simulator: each event the expected text to
//! the expected phone, once although every event is delivered twice; the paid items of a
//! payment batch are told from the batch, the failed ones by their own events, and a result
//! that overtakes its failures waits for them.

mod common;

use common::*;
use contracts::Line;
use contracts::benefits::filings as f;
use contracts::benefits::social as s;
use serde_json::Value;
use smsc_sim::SimConfig;
use std::time::Duration;
use testkit::services::Services;
use testkit::{TestEnv, WAIT, wait_for};

fn at(t: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(t).expect("a time")
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("json")
}

#[allow(non_snake_case)]
fn SOCIAL(name: &str) -> (Line, &str, &str) {
    (Line::Social, "benefits", name)
}

#[allow(non_snake_case)]
fn MEDICAL(name: &str) -> (Line, &str, &str) {
    (Line::Medical, "benefits", name)
}

#[tokio::test]
async fn retirement_awards_and_payments_tell_each_person_once_and_a_failed_payment_is_never_told_paid() {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let (id21, id22, id23) = (
        testkit::id_number(21),
        testkit::id_number(22),
        testkit::id_number(23),
    );
    let (ph21, ph22, ph23) = (testkit::phone(21), testkit::phone(22), testkit::phone(23));
    let p21 = enroll(&client, Line::Social, 21, &["pension"]).await;
    let p22 = enroll(&client, Line::Social, 22, &["pension"]).await;
    let p23 = enroll(&client, Line::Social, 23, &["pension"]).await;
    for ph in [&ph21, &ph22, &ph23] {
        texts(&smsc, ph, 1).await;
    }

    // Person 21 applies, is approved; the pension award comes with the approval and says
    // nothing more.
    let application = "01a24e15-d027-7610-85ba-775b00d0a001";
    let applied = s::RetirementApplied {
        application_id: application.into(),
        psn_no: p21.clone(),
        id_number: id21.clone(),
        position: "worker".into(),
        applied_at: at("2024-04-28T09:30:00+08:00"),
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph21,
            1,
            SOCIAL("retirement-applied"),
            &json(&applied)
        )
        .await,
        "【武汉人社】您的退休申请已于2024-04-28 09:30受理（受理号00D0A001），审核结果将另行通知。如有疑问请致电027-12333。"
    );
    let approved = s::RetirementApproved {
        application_id: application.into(),
        award_id: "award-21".into(),
        psn_no: p21.clone(),
        id_number: id21.clone(),
        reaches_age_on: chrono::NaiveDate::from_ymd_opt(2024, 4, 1).expect("a date"),
        from_month: "2024-05".into(),
        start_rule: "in-time".into(),
        pension: s::PensionFigures {
            average_wage: "7000.00".into(),
            contribution_index: "1.0000".into(),
            contribution_months: 300,
            basic_pension: "1750.00".into(),
            account_balance: "82797.13".into(),
            divisor_months: 139,
            account_pension: "595.67".into(),
            monthly_pension: "2345.67".into(),
            policy_id: 1,
        },
        reviewer: "张审核".into(),
        at: at("2024-04-30T10:00:00+08:00"),
    };
    let award =
        |id: &str, psn: &str, id_number: &str, kind: &str, amount: &str, from: &str, to: Option<&str>| {
            s::BenefitAwarded {
                award_id: id.into(),
                psn_no: psn.into(),
                id_number: id_number.into(),
                kind: kind.into(),
                monthly_amount: amount.into(),
                from_month: from.into(),
                to_month: to.map(Into::into),
                source_ref: "ref".into(),
            }
        };
    publish_twice(
        &env,
        Line::Social,
        "benefits",
        "benefit-awarded",
        &json(&award(
            "award-21", &p21, &id21, "pension", "2345.67", "2024-05", None,
        )),
    )
    .await;
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph21,
            2,
            SOCIAL("retirement-approved"),
            &json(&approved)
        )
        .await,
        "【武汉人社】您的退休申请（受理号00D0A001）已审核通过，月基本养老金2345.67元（基础养老金1750.00元，个人账户养老金595.67元），自2024-05起按月发放至您的社会保障卡金融账户。如有疑问请致电027-12333。"
    );

    // Person 22: a rejection names the reason in Chinese; an unemployment benefit its months.
    let rejected = s::RetirementRejected {
        application_id: "01a24e15-d027-7610-85ba-775b00d0a002".into(),
        psn_no: p22.clone(),
        id_number: id22.clone(),
        reason_code: "insufficient-contribution-years".into(),
        reason: "累计缴费年限不足：10年0个月，最低15年 (120 contribution months, at least 180 required)"
            .into(),
        reviewer: "张审核".into(),
        at: at("2024-04-30T10:00:00+08:00"),
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph22,
            1,
            SOCIAL("retirement-rejected"),
            &json(&rejected)
        )
        .await,
        "【武汉人社】您的退休申请（受理号00D0A002）未通过审核：累计缴费年限不足：10年0个月，最低15年。如有疑问请致电027-12333。"
    );
    let unemployment = award(
        "award-22",
        &p22,
        &id22,
        "unemployment",
        "1800.00",
        "2024-06",
        Some("2025-05"),
    );
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph22,
            2,
            SOCIAL("benefit-awarded"),
            &json(&unemployment)
        )
        .await,
        "【武汉人社】您的失业保险金已核定，每月1800.00元，自2024-06至2025-05按月发放至您的社会保障卡金融账户。如有疑问请致电027-12333。"
    );
    let injury = award("award-22b", &p22, &id22, "work-injury", "960.00", "2024-07", None);
    assert_eq!(
        told_once(&env, &smsc, &ph22, 3, SOCIAL("benefit-awarded"), &json(&injury)).await,
        "【武汉人社】您的工伤保险定期待遇已核定，每月960.00元，自2024-07起按月发放至您的社会保障卡金融账户。如有疑问请致电027-12333。"
    );

    // June's pension run: 21 is paid May (back month) and June, 23's payment fails. The
    // bank's results are delivered before the failure's event: the paid are told only once
    // the failure is known, and 23 is told the failure, never a payment.
    let item = |id: &str, psn: &str, id_number: &str, months: &[&str], amount: &str| s::PaymentItem {
        item_id: id.into(),
        award_id: format!("award-of-{id}"),
        psn_no: psn.into(),
        id_number: id_number.into(),
        months: months.iter().map(|m| m.to_string()).collect(),
        amount: amount.into(),
        card_state: "activated".into(),
        status: "ordered".into(),
        reason: None,
    };
    let batch = s::BenefitPaymentBatchOrdered {
        batch_id: "batch-2024-06-pension".into(),
        month: "2024-06".into(),
        kind: "pension".into(),
        item_count: 2,
        total: "6791.34".into(),
        items: vec![
            item("item-21", &p21, &id21, &["2024-05", "2024-06"], "4691.34"),
            item("item-23", &p23, &id23, &["2024-06"], "2100.00"),
        ],
    };
    publish_twice(
        &env,
        Line::Social,
        "benefits",
        "benefit-payment-batch-ordered",
        &json(&batch),
    )
    .await;
    let recorded = s::BenefitPaymentsRecorded {
        batch_id: batch.batch_id.clone(),
        month: "2024-06".into(),
        kind: "pension".into(),
        paid_count: 1,
        paid_total: "4691.34".into(),
        failed_count: 1,
        failed_total: "2100.00".into(),
    };
    publish_twice(
        &env,
        Line::Social,
        "benefits",
        "benefit-payments-recorded",
        &json(&recorded),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        smsc.received_by(&ph21).len(),
        3,
        "nobody is told paid while a failure counted in the results is not known"
    );
    let failed = s::BenefitPaymentFailed {
        batch_id: batch.batch_id.clone(),
        item_id: "item-23".into(),
        award_id: "award-of-item-23".into(),
        psn_no: p23.clone(),
        id_number: id23.clone(),
        kind: "pension".into(),
        months: vec!["2024-06".into()],
        amount: "2100.00".into(),
        reason: "账户已冻结".into(),
    };
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph23,
            1,
            SOCIAL("benefit-payment-failed"),
            &json(&failed)
        )
        .await,
        "【武汉人社】您2024-06的基本养老金2100.00元未能发放至您的社会保障卡金融账户：账户已冻结。请核实账户状态，该款项将在下次发放时补发。如有疑问请致电027-12333。"
    );
    let t21 = texts(&smsc, &ph21, 4).await;
    assert_eq!(
        t21[3],
        "【武汉人社】您2024-05至2024-06的基本养老金4691.34元已发放至您的社会保障卡金融账户。如有疑问请致电027-12333。"
    );

    // Each once: nothing more arrives, and the listing shows the paid pension delivered.
    wait_for("the payment delivered", WAIT, || async {
        listed(&client, &id21)
            .await
            .iter()
            .any(|n| n["template"] == "benefit-paid@1" && n["state"] == "delivered")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smsc.received_by(&ph21).len(), 4, "{:?}", smsc.received_by(&ph21));
    assert_eq!(smsc.received_by(&ph22).len(), 4, "{:?}", smsc.received_by(&ph22));
    assert_eq!(smsc.received_by(&ph23).len(), 2, "{:?}", smsc.received_by(&ph23));

    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

#[tokio::test]
async fn each_filing_step_tells_the_person_once_what_the_filing_is_for() {
    let env = TestEnv::new();
    let smsc = smsc(SimConfig::default()).await;
    let mut services = Services::new();
    start_enrollment(&env, &mut services).await;
    let workers = start_notification(&env, &mut services, sms(smsc.addr), notify(100)).await;
    let client = env.client().await;
    let ph = testkit::phone(31);
    let p31 = enroll(&client, Line::Medical, 31, &["employee_medical"]).await;
    texts(&smsc, &ph, 1).await;

    let recorded = |id: &str, kind: &str, subject: &str, status: &str, to: Option<&str>| f::FilingRecorded {
        filing_id: id.into(),
        psn_no: p31.clone(),
        kind: kind.into(),
        procedure: if status == "submitted" {
            "full-review"
        } else {
            "simple"
        }
        .into(),
        status: status.into(),
        valid_from: "2024-06-01".into(),
        valid_to: to.map(Into::into),
        subject: subject.into(),
        late: false,
        at: at("2024-05-20T10:00:00+08:00"),
    };
    let approved = |id: &str, kind: &str, by: &str| f::FilingApproved {
        filing_id: id.into(),
        psn_no: p31.clone(),
        kind: kind.into(),
        by: by.into(),
        at: at("2024-05-21T10:00:00+08:00"),
    };
    let (cross, chronic, refused) = (
        "01a24e15-d027-7610-85ba-775b00f11001",
        "01a24e15-d027-7610-85ba-775b00f11002",
        "01a24e15-d027-7610-85ba-775b00f11003",
    );

    // A cross-region filing, approved at once: one text, when it is approved.
    publish_twice(
        &env,
        Line::Medical,
        "benefits",
        "filing-recorded",
        &json(&recorded(
            cross,
            "cross-region",
            "work-posting 370100",
            "approved",
            Some("2024-12-31"),
        )),
    )
    .await;
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph,
            1,
            MEDICAL("filing-approved"),
            &json(&approved(cross, "cross-region", "simple"))
        )
        .await,
        "【武汉医保】您的异地就医（常驻异地工作，就医地370100）备案（备案号00F11001）已办结，有效期2024-06-01至2024-12-31。如有疑问请致电027-87812393。"
    );

    // A chronic disease excluded from the simple procedure: submitted, then approved.
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph,
            2,
            MEDICAL("filing-recorded"),
            &json(&recorded(chronic, "chronic-disease", "I10", "submitted", None))
        )
        .await,
        "【武汉医保】您的门诊慢特病（I10）备案申请已受理（备案号00F11002），需经审核，结果将另行通知。如有疑问请致电027-87812393。"
    );
    assert_eq!(
        told_once(
            &env,
            &smsc,
            &ph,
            3,
            MEDICAL("filing-approved"),
            &json(&approved(chronic, "chronic-disease", "李审核"))
        )
        .await,
        "【武汉医保】您的门诊慢特病（I10）备案（备案号00F11002）已办结，有效期自2024-06-01起。如有疑问请致电027-87812393。"
    );

    // Another submitted, then rejected with the reviewer's reason.
    told_once(
        &env,
        &smsc,
        &ph,
        4,
        MEDICAL("filing-recorded"),
        &json(&recorded(refused, "chronic-disease", "E11", "submitted", None)),
    )
    .await;
    let rejected = f::FilingRejected {
        filing_id: refused.into(),
        psn_no: p31.clone(),
        kind: "chronic-disease".into(),
        reviewer: "李审核".into(),
        reason: "诊断证明不全".into(),
        at: at("2024-05-22T10:00:00+08:00"),
    };
    assert_eq!(
        told_once(&env, &smsc, &ph, 5, MEDICAL("filing-rejected"), &json(&rejected)).await,
        "【武汉医保】您的门诊慢特病（E11）备案申请（备案号00F11003）未通过审核：诊断证明不全。如有疑问请致电027-87812393。"
    );

    // The cross-region filing revoked.
    let revoked = f::FilingRevoked {
        filing_id: cross.into(),
        psn_no: p31.clone(),
        kind: "cross-region".into(),
        reason: "本人申请撤销".into(),
        at: at("2024-07-01T10:00:00+08:00"),
    };
    assert_eq!(
        told_once(&env, &smsc, &ph, 6, MEDICAL("filing-revoked"), &json(&revoked)).await,
        "【武汉医保】您的异地就医（常驻异地工作，就医地370100）备案（备案号00F11001）已撤销：本人申请撤销。此后就医按普通规定结算。如有疑问请致电027-87812393。"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smsc.received_by(&ph).len(), 7, "{:?}", smsc.received_by(&ph));
    services.stop().await;
    let _ = workers.await;
    smsc.stop();
}

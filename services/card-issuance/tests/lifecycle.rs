//! The lifecycle through the broker (issue 11 §1): every step's status, text and event; each
//! failure with its reason, what to do, and the agency's rollback to the step it is redone
//! from.

mod common;

use common::{enroll, from_production, in_person, ok, refused, status};
use contracts::Channel::{Bank, Counter};
use serde_json::json;
use testkit::TestEnv;

#[tokio::test]
async fn an_application_goes_from_information_to_activation_with_a_status_and_an_event_per_step() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("common.card-issuance.*").await;
    let id = enroll(&env, &client, 1, "flexible").await;

    let v = ok(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "ICBC"}),
        Counter,
    )
    .await;
    assert_eq!(
        (v["step"].as_str(), v["state"].as_str(), v["colour"].as_str()),
        (Some("info-collected"), Some("action-pending"), Some("orange"))
    );
    assert!(v["action"].as_str().unwrap().contains("采集照片"), "{v}");
    let today = chrono::Utc::now()
        .with_timezone(&contracts::freeze::cst())
        .date_naive()
        .to_string();
    assert_eq!(v["last_step_on"], today.as_str());
    let application = v["application_id"].as_str().unwrap().to_owned();
    let e = tap.expect("common.card-issuance.card-applied").await;
    assert_eq!(e.body["id_number"], id.as_str());
    assert_eq!(e.body["state"], "action-pending");
    assert_eq!(e.body["insurance_types"], json!(["employee_medical"]));
    assert_eq!(e.body["lines"], json!(["medical"]));
    assert_eq!(e.body["name"], "参保人1");

    let v = ok(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": true}),
        Counter,
    )
    .await;
    assert_eq!(v["text"], "照片审核通过，银行开户中");
    tap.expect("common.card-issuance.photo-approved").await;
    let req = tap.expect("common.card-issuance.bank-account-requested").await;
    assert_eq!(req.body["application_id"], application.as_str());
    assert_eq!(req.body["bank"], "ICBC");
    assert_eq!(req.body["in_production"], true, "the account is being opened");
    assert_eq!(req.body["attempt"], 1);

    let v = ok(
        &client,
        "record-bank-account",
        json!({"id_number": id, "application_id": application, "opened": true, "financial_account": "6222020200112233445"}),
        Bank,
    )
    .await;
    assert_eq!(
        (v["step"].as_str(), v["text"].as_str()),
        (Some("bank-account-opened"), Some("银行开户成功，卡片制作中"))
    );
    assert_eq!(v["financial_account"], "6222020200112233445");
    let opened = tap.expect("common.card-issuance.bank-account-opened").await;
    assert_eq!(opened.body["financial_account"], "6222020200112233445");
    let production = tap.expect("common.card-issuance.card-production-requested").await;
    assert_eq!(production.body["in_production"], true);

    from_production(&client, &id, &application).await;
    let produced = tap.expect("common.card-issuance.card-produced").await;
    let card_number = produced.body["card_number"].as_str().unwrap().to_owned();
    assert_eq!(produced.body["in_production"], false);
    tap.expect("common.card-issuance.card-shipped").await;
    tap.expect("common.card-issuance.card-arrived").await;
    let v = status(&client, &id).await;
    assert_eq!(
        (v["step"].as_str(), v["state"].as_str()),
        (Some("arrived-at-branch"), Some("action-pending"))
    );
    assert_eq!(v["text"], "卡片已到达工商银行昆区支行，可以领卡");
    assert!(v["action"].as_str().unwrap().contains("户口簿"), "{v}");

    // Picked up, not activated: a state of its own.
    let v = ok(
        &client,
        "pick-up-card",
        json!({"id_number": id, "representative": in_person(), "documents": ["id_card"]}),
        Bank,
    )
    .await;
    assert_eq!(
        (v["state"].as_str(), v["colour"].as_str()),
        (Some("picked-up-not-activated"), Some("orange"))
    );
    assert_eq!(v["text"], "已领卡，社保功能未激活");
    let picked = tap.expect("common.card-issuance.card-picked-up").await;
    assert_eq!(picked.body["state"], "picked-up-not-activated");

    let v = ok(
        &client,
        "activate-card",
        json!({"id_number": id, "place": "bank", "representative": in_person(), "documents": ["id_card"]}),
        Bank,
    )
    .await;
    assert_eq!(
        (v["state"].as_str(), v["colour"].as_str()),
        (Some("activated"), Some("green"))
    );
    assert_eq!(v["card_number"], card_number.as_str());
    assert_eq!(v["bank"], "ICBC");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "card-applied",
            "photo-approved",
            "bank-account-requested",
            "bank-account-opened",
            "card-production-requested",
            "card-produced",
            "card-shipped",
            "card-arrived",
            "card-picked-up",
            "card-activated"
        ]
    );
    let activated = tap.expect("common.card-issuance.card-activated").await;
    assert_eq!(activated.body["id_number"], id.as_str());
    assert_eq!(activated.body["state"], "activated");
    assert_eq!(activated.body["card_number"], card_number.as_str());
    assert_eq!(activated.body["financial_account"], "6222020200112233445");
    assert_eq!(activated.body["lines"], json!(["medical"]));

    // The same person cannot apply twice.
    refused(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "ICBC"}),
        Counter,
        "CONFLICT",
        "id_number",
    )
    .await;
    common::assert_drained(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn each_failure_shows_red_with_its_reason_and_the_rollback_redoes_its_step() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("common.card-issuance.*").await;
    let id = enroll(&env, &client, 2, "flexible").await;
    let v = ok(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "CCB"}),
        Counter,
    )
    .await;
    let application = v["application_id"].as_str().unwrap().to_owned();

    // Photo rejected → red with the reason; rollback → a new photo.
    refused(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": false}),
        Counter,
        "INVALID_FIELD",
        "reason",
    )
    .await;
    let v = ok(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": false, "reason": "背景颜色不符合要求"}),
        Counter,
    )
    .await;
    assert_eq!(
        (v["state"].as_str(), v["colour"].as_str()),
        (Some("failed"), Some("red"))
    );
    assert_eq!(v["text"], "照片审核未通过：背景颜色不符合要求");
    assert!(v["action"].as_str().unwrap().contains("重新采集"), "{v}");
    let rejected = tap.expect("common.card-issuance.photo-rejected").await;
    assert_eq!(rejected.body["state"], "failed");
    assert_eq!(rejected.body["reason"], "背景颜色不符合要求");
    // A failed application goes nowhere until it is rolled back, and only by the agency.
    refused(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": true}),
        Counter,
        "CONFLICT",
        "id_number",
    )
    .await;
    refused(
        &client,
        "roll-back",
        json!({"id_number": id}),
        Bank,
        "NOT_ELIGIBLE",
        "x-channel",
    )
    .await;
    let v = ok(&client, "roll-back", json!({"id_number": id}), Counter).await;
    assert_eq!(
        (v["step"].as_str(), v["state"].as_str()),
        (Some("info-collected"), Some("action-pending"))
    );
    tap.expect("common.card-issuance.application-rolled-back").await;

    // Bank account failed → rollback asks the bank again (attempt 2).
    ok(
        &client,
        "review-photo",
        json!({"id_number": id, "approved": true}),
        Counter,
    )
    .await;
    let v = ok(
        &client,
        "record-bank-account",
        json!({"id_number": id, "application_id": application, "opened": false, "reason": "身份信息与银行核验不一致"}),
        Bank,
    )
    .await;
    assert_eq!(v["text"], "银行开户失败：身份信息与银行核验不一致");
    assert_eq!(v["failure"], "bank-account-failed");
    let failed = tap.expect("common.card-issuance.bank-account-failed").await;
    assert_eq!(failed.body["in_production"], false);
    let v = ok(&client, "roll-back", json!({"id_number": id}), Counter).await;
    assert_eq!(v["step"], "photo-approved");
    let again = tap.expect("common.card-issuance.bank-account-requested").await;
    assert_eq!(again.body["attempt"], 2);

    // Only the bank reports what the bank did.
    refused(
        &client,
        "record-bank-account",
        json!({"id_number": id, "application_id": application, "opened": true, "financial_account": "6217000011112222"}),
        Counter,
        "NOT_ELIGIBLE",
        "x-channel",
    )
    .await;
    // Production failed → rollback makes the card again, the account is kept.
    ok(
        &client,
        "record-bank-account",
        json!({"id_number": id, "application_id": application, "opened": true, "financial_account": "6217000011112222"}),
        Bank,
    )
    .await;
    let v = ok(
        &client,
        "record-production",
        json!({"id_number": id, "application_id": application, "produced": false, "reason": "芯片写入失败"}),
        Bank,
    )
    .await;
    assert_eq!(
        (v["colour"].as_str(), v["text"].as_str()),
        (Some("red"), Some("卡片制作失败：芯片写入失败"))
    );
    assert!(v["action"].as_str().unwrap().contains("无需重新采集"), "{v}");
    let v = ok(&client, "roll-back", json!({"id_number": id}), Counter).await;
    assert_eq!(v["step"], "bank-account-opened");
    assert_eq!(v["financial_account"], "6217000011112222");
    let production = tap.expect("common.card-issuance.card-production-requested").await;
    assert_eq!(production.body["attempt"], 2);

    // Data error on the card face, corrected through the hospital and the bureau.
    from_production(&client, &id, &application).await;
    refused(
        &client,
        "report-data-error",
        json!({"id_number": id, "reason": "姓名有误", "correction_via": "clinic"}),
        Counter,
        "INVALID_FIELD",
        "correction_via",
    )
    .await;
    let v = ok(
        &client,
        "report-data-error",
        json!({"id_number": id, "reason": "姓名有误", "correction_via": "hospital"}),
        Counter,
    )
    .await;
    assert_eq!(v["text"], "卡面信息有误：姓名有误");
    assert!(v["action"].as_str().unwrap().contains("医院医保办"), "{v}");
    tap.expect("common.card-issuance.card-data-error-reported").await;
    let v = ok(
        &client,
        "roll-back",
        json!({"id_number": id, "corrected_name": "参保人二"}),
        Counter,
    )
    .await;
    assert_eq!(v["step"], "bank-account-opened");
    assert!(v.get("card_number").is_none(), "the wrong card is withdrawn: {v}");
    let production = tap.expect("common.card-issuance.card-production-requested").await;
    assert_eq!(
        production.body["name"], "参保人二",
        "the corrected name goes to the factory"
    );

    // Nothing to roll back on a healthy application; a stale bank answer is refused.
    refused(
        &client,
        "roll-back",
        json!({"id_number": id}),
        Counter,
        "CONFLICT",
        "id_number",
    )
    .await;
    refused(
        &client,
        "record-production",
        json!({"id_number": id, "application_id": uuid::Uuid::now_v7().to_string(), "produced": true, "card_number": "X1"}),
        Bank,
        "CONFLICT",
        "application_id",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_command_gets_the_stored_reply_and_changes_nothing() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let id = enroll(&env, &client, 40, "flexible").await;
    let cmd = common::command("apply-card", json!({"id_number": id, "bank": "ICBC"}), Counter)
        .with_message_id(uuid::Uuid::now_v7());
    let first = testkit::send_command(&client, &cmd, testkit::WAIT).await.unwrap();
    let again = testkit::send_command(&client, &cmd, testkit::WAIT).await.unwrap();
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(first, again, "the stored reply, not a CONFLICT");
    let pool = env.pool(common::SERVICE).await;
    let db = pool.get().await.unwrap();
    let n: i64 = db
        .query_one("select count(*) from applications", &[])
        .await
        .unwrap()
        .get(0);
    let steps: i64 = db
        .query_one("select count(*) from steps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((n, steps), (1, 1));
    common::assert_drained(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn only_persons_known_from_enrollment_may_apply_and_the_query_validates_the_id() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let stranger = testkit::id_number(30);
    let msg = refused(
        &client,
        "apply-card",
        json!({"id_number": stranger, "bank": "ICBC"}),
        Counter,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    assert!(msg.contains("not enrolled"), "{msg}");
    assert!(!msg.contains(&stranger), "the message masks the ID number: {msg}");
    refused(
        &client,
        "get-card-status",
        json!({"id_number": "420102199001011230"}),
        Counter,
        "INVALID_ID_NUMBER",
        "id_number",
    )
    .await;
    refused(
        &client,
        "get-card-status",
        json!({"id_number": stranger}),
        Counter,
        "NOT_FOUND",
        "id_number",
    )
    .await;

    // Suspended: no active enrollment, no card.
    let id = enroll(&env, &client, 31, "flexible").await;
    let r = testkit::send(
        &client,
        contracts::Line::Medical,
        "enrollment",
        "suspend",
        json!({"id_number": id, "insurance_types": ["employee_medical"], "reason": "停保", "month": "2024-04"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let pool = env.pool(common::SERVICE).await;
    testkit::wait_for("the suspension seen", testkit::WAIT, || async {
        let db = pool.get().await.ok()?;
        let s: String = db
            .query_one(
                "select status from person_enrollments where id_number = $1",
                &[&id],
            )
            .await
            .ok()?
            .get(0);
        (s == "suspended").then_some(())
    })
    .await;
    refused(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "ICBC"}),
        Counter,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    let n: i64 = pool
        .get()
        .await
        .unwrap()
        .query_one("select count(*) from applications", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "refusals change nothing");
    app.stop().await;
}

#[tokio::test]
async fn the_card_serves_both_lines_and_its_events_name_them() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("common.card-issuance.card-applied").await;
    let id = enroll(&env, &client, 50, "flexible").await;
    // The same person in pension, on the social line: the card service hears both lines.
    let r = testkit::send(
        &client,
        contracts::Line::Social,
        "enrollment",
        "enroll-person",
        json!({"id_number": id, "name": "参保人50", "phone": testkit::phone(50), "category": "flexible",
               "insurance_types": ["pension"], "effective_month": "2024-03"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let pool = env.pool(common::SERVICE).await;
    testkit::wait_for("the pension enrollment seen", testkit::WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one(
                "select count(*) from person_enrollments where id_number = $1 and insurance_type = 'pension'",
                &[&id],
            )
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    ok(
        &client,
        "apply-card",
        json!({"id_number": id, "bank": "ICBC"}),
        Counter,
    )
    .await;
    let e = tap.expect("common.card-issuance.card-applied").await;
    assert_eq!(e.body["insurance_types"], json!(["employee_medical", "pension"]));
    assert_eq!(e.body["lines"], json!(["medical", "social"]));
    common::assert_drained(&env).await;
    app.stop().await;
}

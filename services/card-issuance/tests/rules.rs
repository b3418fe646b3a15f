//! The rules at the counter and the bank (issue 11 §2), through the broker: pick-up in
//! person, by an agent, by a guardian; where activation may happen; instant issuance; loss,
//! replacement, renewal; cancellation from enrollment's termination. Every refusal is
//! `INVALID_FIELD` or `NOT_ELIGIBLE` with its reason, and changes nothing.

mod common;

use common::{enroll, from_production, in_person, ok, refused, status, to_branch};
use contracts::Channel::{Bank, Counter, Institution};
use serde_json::{Value, json};
use testkit::TestEnv;

/// A person born in 2010: a minor until 2028.
const MINOR: u32 = 18_300_001;

fn agent(n: u32) -> Value {
    json!({"by": "agent", "id_number": testkit::id_number(n)})
}

#[tokio::test]
async fn pick_up_in_person_by_an_agent_or_by_a_guardian_and_where_each_may_activate() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let employee = enroll(&env, &client, 100, "flexible").await;
    to_branch(&client, &employee).await;

    let pick = |rep: Value, docs: Value, activate: bool| json!({"id_number": employee, "representative": rep, "documents": docs, "activate": activate});
    let m = refused(
        &client,
        "pick-up-card",
        pick(agent(900), json!(["id_card"]), false),
        Bank,
        "INVALID_FIELD",
        "documents",
    )
    .await;
    assert!(m.contains("both ID cards"), "{m}");
    refused(
        &client,
        "pick-up-card",
        pick(json!({"by": "agent"}), json!(["id_card", "agent_id_card"]), false),
        Bank,
        "INVALID_FIELD",
        "representative.id_number",
    )
    .await;
    let m = refused(
        &client,
        "pick-up-card",
        pick(
            json!({"by": "guardian", "id_number": testkit::id_number(901)}),
            json!(["household_register"]),
            false,
        ),
        Bank,
        "NOT_ELIGIBLE",
        "representative.by",
    )
    .await;
    assert!(m.contains("minor"), "{m}");
    refused(
        &client,
        "pick-up-card",
        pick(in_person(), json!([]), false),
        Bank,
        "INVALID_FIELD",
        "documents",
    )
    .await;
    // Activation on pick-up is at the bank, and not by an agent.
    refused(
        &client,
        "pick-up-card",
        pick(agent(900), json!(["id_card", "agent_id_card"]), true),
        Bank,
        "NOT_ELIGIBLE",
        "representative.by",
    )
    .await;
    refused(
        &client,
        "pick-up-card",
        pick(in_person(), json!(["id_card"]), true),
        Counter,
        "INVALID_FIELD",
        "activate",
    )
    .await;
    assert_eq!(
        status(&client, &employee).await["step"],
        "arrived-at-branch",
        "refusals change nothing"
    );

    let v = ok(
        &client,
        "pick-up-card",
        pick(agent(900), json!(["id_card", "agent_id_card"]), false),
        Bank,
    )
    .await;
    assert_eq!(v["state"], "picked-up-not-activated");
    let activate = |place: &str| {
        json!({"id_number": employee, "place": place, "representative": agent(900),
               "documents": ["id_card", "agent_id_card"]})
    };
    refused(
        &client,
        "activate-card",
        activate("bank"),
        Bank,
        "NOT_ELIGIBLE",
        "representative.by",
    )
    .await;
    let m = refused(
        &client,
        "activate-card",
        activate("hospital"),
        Institution,
        "NOT_ELIGIBLE",
        "place",
    )
    .await;
    assert!(m.contains("resident-medical"), "{m}");
    refused(
        &client,
        "activate-card",
        activate("home"),
        Counter,
        "INVALID_FIELD",
        "place",
    )
    .await;
    // An employee-medical member's agent activates at the agency.
    let v = ok(&client, "activate-card", activate("agency"), Counter).await;
    assert_eq!(v["state"], "activated");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["note"], "agency by agent");

    // A resident-medical member activates at the hospital's insurance office, not the agency.
    let resident = enroll(&env, &client, 101, "resident").await;
    to_branch(&client, &resident).await;
    ok(
        &client,
        "pick-up-card",
        json!({"id_number": resident, "representative": in_person(), "documents": ["id_card"]}),
        Bank,
    )
    .await;
    let activate = |place: &str| json!({"id_number": resident, "place": place, "representative": in_person(), "documents": ["id_card"]});
    let m = refused(
        &client,
        "activate-card",
        activate("agency"),
        Counter,
        "NOT_ELIGIBLE",
        "place",
    )
    .await;
    assert!(m.contains("employee-medical"), "{m}");
    let v = ok(&client, "activate-card", activate("hospital"), Institution).await;
    assert_eq!(v["state"], "activated");

    // A minor's card is picked up by a guardian with the household register, activated at once.
    let minor = enroll(&env, &client, MINOR, "resident").await;
    to_branch(&client, &minor).await;
    let guardian = json!({"by": "guardian", "id_number": testkit::id_number(902)});
    refused(
        &client,
        "pick-up-card",
        json!({"id_number": minor, "representative": guardian, "documents": ["id_card"]}),
        Bank,
        "INVALID_FIELD",
        "documents",
    )
    .await;
    let v = ok(
        &client,
        "pick-up-card",
        json!({"id_number": minor, "representative": guardian, "documents": ["household_register"], "activate": true}),
        Bank,
    )
    .await;
    assert_eq!(v["state"], "activated");
    common::assert_drained(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn instant_issuance_at_a_bank_skips_shipping_and_is_refused_for_an_agent() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("common.card-issuance.*").await;
    let patient = enroll(&env, &client, 200, "resident").await;
    let body = |rep: Value, docs: Value| {
        json!({"id_number": patient, "bank": "BOC", "branch": "中国银行包头分行营业部",
               "financial_account": "6216610000123456", "card_number": "J15020000001",
               "representative": rep, "documents": docs, "activate": true})
    };
    let all = json!(["id_card", "household_register", "hospital_form", "agent_id_card"]);
    let m = refused(
        &client,
        "issue-instantly",
        body(agent(990), all.clone()),
        Bank,
        "NOT_ELIGIBLE",
        "representative.by",
    )
    .await;
    assert!(m.contains("agent"), "{m}");
    refused(
        &client,
        "issue-instantly",
        body(in_person(), all.clone()),
        Counter,
        "NOT_ELIGIBLE",
        "x-channel",
    )
    .await;
    let m = refused(
        &client,
        "issue-instantly",
        body(in_person(), json!(["id_card", "household_register"])),
        Bank,
        "INVALID_FIELD",
        "documents",
    )
    .await;
    assert!(m.contains("hospital_form"), "{m}");
    refused(
        &client,
        "get-card-status",
        json!({"id_number": patient}),
        Counter,
        "NOT_FOUND",
        "id_number",
    )
    .await;

    // A pending application is superseded by the card made now.
    let pending = ok(
        &client,
        "apply-card",
        json!({"id_number": patient, "bank": "ICBC"}),
        Counter,
    )
    .await;
    let v = ok(
        &client,
        "issue-instantly",
        body(
            in_person(),
            json!(["id_card", "household_register", "hospital_form"]),
        ),
        Bank,
    )
    .await;
    assert_eq!(
        (v["kind"].as_str(), v["state"].as_str()),
        (Some("instant"), Some("activated"))
    );
    assert_ne!(v["application_id"], pending["application_id"]);
    assert_eq!(v["card_number"], "J15020000001");
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
            "bank-account-opened",
            "card-produced",
            "card-picked-up",
            "card-activated"
        ],
        "no shipping, no arrival"
    );
    let mut names = vec![];
    loop {
        let e = tap.next(testkit::WAIT).await.expect("the instant card's events");
        names.push(e.routing_key.rsplit('.').next().unwrap().to_owned());
        if e.routing_key.ends_with("card-activated") {
            assert_eq!(e.body["kind"], "instant");
            assert_eq!(e.body["financial_account"], "6216610000123456");
            assert_eq!(e.body["lines"], json!(["medical"]));
            break;
        }
    }
    assert_eq!(
        names,
        [
            "card-applied",
            "card-applied",
            "photo-approved",
            "bank-account-opened",
            "card-produced",
            "card-picked-up",
            "card-activated"
        ],
        "the pending application, then the instant card's steps: no shipping"
    );
    // A second instant card is refused.
    refused(
        &client,
        "issue-instantly",
        body(
            in_person(),
            json!(["id_card", "household_register", "hospital_form"]),
        ),
        Bank,
        "CONFLICT",
        "id_number",
    )
    .await;
    common::assert_drained(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn loss_reports_replacement_and_renewal() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("common.card-issuance.*").await;
    let id = enroll(&env, &client, 300, "flexible").await;
    let first = to_branch(&client, &id).await;
    let loss = |kind: &str| json!({"id_number": id, "kind": kind});
    refused(
        &client,
        "report-loss",
        loss("temporary"),
        Bank,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    ok(
        &client,
        "pick-up-card",
        json!({"id_number": id, "representative": in_person(), "documents": ["id_card"], "activate": true}),
        Bank,
    )
    .await;
    refused(
        &client,
        "report-loss",
        loss("stolen"),
        Bank,
        "INVALID_FIELD",
        "kind",
    )
    .await;
    refused(
        &client,
        "replace-card",
        json!({"id_number": id}),
        Bank,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;

    let v = ok(&client, "report-loss", loss("temporary"), Bank).await;
    assert_eq!(
        (v["state"].as_str(), v["text"].as_str()),
        (Some("lost-temporarily"), Some("社会保障卡已临时挂失"))
    );
    let m = refused(
        &client,
        "replace-card",
        json!({"id_number": id}),
        Bank,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    assert!(m.contains("formally"), "{m}");
    refused(
        &client,
        "renew-card",
        json!({"id_number": id, "reason": "damage"}),
        Counter,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    // Found again: a temporary report is lifted (解挂), then made again.
    let v = ok(&client, "lift-loss", json!({"id_number": id}), Bank).await;
    assert_eq!(v["state"], "activated");
    refused(
        &client,
        "lift-loss",
        json!({"id_number": id}),
        Bank,
        "CONFLICT",
        "id_number",
    )
    .await;
    ok(&client, "report-loss", loss("temporary"), Bank).await;
    let v = ok(&client, "report-loss", loss("formal"), Bank).await;
    assert_eq!(v["state"], "lost");
    refused(
        &client,
        "lift-loss",
        json!({"id_number": id}),
        Bank,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    assert!(v["action"].as_str().unwrap().contains("补卡"));
    let reported = tap.expect("common.card-issuance.card-loss-reported").await;
    assert_eq!(reported.body["reason"], "temporary");
    refused(&client, "report-loss", loss("formal"), Bank, "CONFLICT", "kind").await;

    // Replacement: a new card on the same account, made again from production.
    let old_account = v["financial_account"].clone();
    let v = ok(&client, "replace-card", json!({"id_number": id}), Bank).await;
    assert_eq!(
        (v["kind"].as_str(), v["step"].as_str()),
        (Some("replacement"), Some("bank-account-opened"))
    );
    assert_eq!(v["financial_account"], old_account);
    assert_ne!(v["application_id"], first.as_str());
    let replacement = v["application_id"].as_str().unwrap().to_owned();
    tap.expect("common.card-issuance.card-replaced").await;
    let req = tap.expect("common.card-issuance.card-production-requested").await;
    assert_eq!(req.body["application_id"], replacement.as_str());
    assert_eq!(req.body["kind"], "replacement");

    // Renewal after the replacement is in hand: damage.
    from_production(&client, &id, &replacement).await;
    refused(
        &client,
        "renew-card",
        json!({"id_number": id, "reason": "damage"}),
        Counter,
        "NOT_ELIGIBLE",
        "id_number",
    )
    .await;
    ok(
        &client,
        "pick-up-card",
        json!({"id_number": id, "representative": in_person(), "documents": ["id_card"], "activate": true}),
        Bank,
    )
    .await;
    refused(
        &client,
        "renew-card",
        json!({"id_number": id, "reason": "bored"}),
        Counter,
        "INVALID_FIELD",
        "reason",
    )
    .await;
    refused(
        &client,
        "renew-card",
        json!({"id_number": id, "reason": "damage", "name": "新名字"}),
        Counter,
        "INVALID_FIELD",
        "name",
    )
    .await;
    let v = ok(
        &client,
        "renew-card",
        json!({"id_number": id, "reason": "data-change", "name": "参保人三百"}),
        Counter,
    )
    .await;
    assert_eq!(
        (v["kind"].as_str(), v["state"].as_str()),
        (Some("renewal"), Some("in-progress"))
    );
    let renewed = tap.expect("common.card-issuance.card-renewed").await;
    assert_eq!(renewed.body["name"], "参保人三百");
    assert_eq!(renewed.body["in_production"], true);
    common::assert_drained(&env).await;
    app.stop().await;
}

#[tokio::test]
async fn a_death_reported_by_enrollment_cancels_the_card() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("common.card-issuance.card-cancelled").await;
    let id = enroll(&env, &client, 400, "flexible").await;
    to_branch(&client, &id).await;
    let r = testkit::send(
        &client,
        contracts::Line::Medical,
        "enrollment",
        "terminate",
        json!({"id_number": id, "insurance_types": ["employee_medical"], "reason": "死亡", "month": "2024-05"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let e = tap.expect("common.card-issuance.card-cancelled").await;
    assert_eq!(e.body["id_number"], id.as_str());
    assert_eq!(e.body["state"], "cancelled");
    let v = status(&client, &id).await;
    assert_eq!(
        (v["state"].as_str(), v["colour"].as_str()),
        (Some("cancelled"), Some("grey"))
    );
    assert_eq!(v["text"], "社会保障卡已注销：死亡");
    refused(
        &client,
        "pick-up-card",
        json!({"id_number": id, "representative": in_person(), "documents": ["id_card"]}),
        Bank,
        "NOT_FOUND",
        "id_number",
    )
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
    common::assert_drained(&env).await;
    app.stop().await;
}

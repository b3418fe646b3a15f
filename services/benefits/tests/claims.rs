//! Manual 手工报销 and maternity 生育 reimbursement (issue 10 §2) through the broker, for
//! persons covered through the real enrollment → assessment → payment path: the claim split
//! exactly as a real-time pre-settlement of the same lines at the same institution, every
//! review step and its event, the payment order for the card's financial account and the
//! bank's result, the approved claim counting in the year's deductible, and every bad input
//! refused with its field. Figures are the seed's placeholder policy (310, level 3: outpatient
//! deductible 700.00 a year at 50 %; level 2 inpatient: 400.00 per admission at 88 %).

mod common;

use common::*;
use contracts::ErrorCode;
use messaging::client::CommandClient;
use serde_json::{Value, json};
use testkit::{TestEnv, credit_code, id_number};

const BEGN: &str = "2024-05-10T09:00:00+08:00";

fn invoice() -> Value {
    json!({"kind": "invoice", "uri": "docs://claims/invoice-1.jpg"})
}

fn claim(psn: &str, insutype: &str, kind: &str, inst: &str, lines: Vec<Value>, medfee: &str) -> Value {
    json!({"psn_no": psn, "insutype": insutype, "kind": kind, "fixmedins_code": inst, "begntime": BEGN,
           "reason": "settlement-stop", "documents": [invoice()], "feedetail": lines,
           "medfee_sumamt": medfee})
}

fn review(claim_id: &str, action: &str, reason: Option<&str>) -> Value {
    let mut b = json!({"claim_id": claim_id, "action": action, "reviewer": "审核员王"});
    if let Some(r) = reason {
        b["reason"] = json!(r);
    }
    b
}

fn amounts(r: &Value) -> [&str; 7] {
    [
        "medfee_sumamt",
        "inscp_scp_amt",
        "act_pay_dedc",
        "hifp_pay",
        "hifob_pay",
        "hifmi_pay",
        "fund_pay_sumamt",
    ]
    .map(|k| r[k].as_str().unwrap_or_else(|| panic!("no {k} in {r}")))
}

/// A pre-settlement (2206) of `lines` for `who` at `inst`: the real-time split to compare with.
async fn pre_settle(
    client: &CommandClient,
    msgid: &str,
    inst: &str,
    who: (&str, &str),
    lines: Vec<Value>,
) -> Value {
    let v = visit(client, "register-visit", msgid, inst, who, BEGN, false).await;
    let mdtrt = v["mdtrt_id"].as_str().unwrap().to_owned();
    upload(client, &mdtrt, who.0, lines.clone()).await;
    let medfee: rust_decimal::Decimal = lines
        .iter()
        .map(|l| {
            l["det_item_fee_sumamt"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    ok(
        client,
        "pre-settle",
        json!({"msgid": format!("P-{msgid}"), "fixmedins_code": inst, "mdtrt_id": mdtrt, "psn_no": who.0,
               "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "medfee_sumamt": format!("{medfee:.2}"),
               "acct_used_flag": "0", "insutype": "310"}),
    )
    .await
}

async fn status_event(tap: &mut testkit::EventTap, claim_id: &str, status: &str) -> Value {
    event_where(tap, "medical.benefits.claim-status-changed", |b| {
        b["claim_id"] == claim_id && b["status"] == status
    })
    .await
}

#[tokio::test]
async fn a_manual_claim_splits_like_a_settlement_goes_through_review_and_is_paid() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("medical.benefits.*").await;
    let employer = credit_code(931);
    let (alice_id, bob_id) = (id_number(931), id_number(932));
    let staff = covered_staff(&client, &env, &employer, &[alice_id.clone(), bob_id.clone()]).await;
    let (alice, bob) = (staff[0].clone(), staff[1].clone());
    let drug = || vec![fee("1", "XA01", "10", "120.00", "1200.00")];

    // Submitted: 1200.00 in scope bears the year's 700.00 deductible, the fund pays 50 % of
    // the remaining 500.00; an estimate until approval.
    let submitted = ok(
        &client,
        "submit-claim",
        claim(&alice, "310", "outpatient", H3, drug(), "1200.00"),
    )
    .await;
    let id = submitted["claim_id"].as_str().unwrap().to_owned();
    assert_eq!(
        amounts(&submitted),
        ["1200.00", "1200.00", "700.00", "250.00", "0.00", "0.00", "250.00"]
    );
    assert_eq!(submitted["psn_pay"], "950.00");
    assert_eq!(
        (
            &submitted["status"],
            &submitted["final_split"],
            &submitted["documents"]
        ),
        (&json!("submitted"), &json!(false), &json!(1))
    );
    let e = status_event(&mut tap, &id, "submitted").await;
    assert_eq!(
        (&e["amount"], &e["kind"]),
        (&json!("250.00"), &json!("outpatient"))
    );

    // The same lines at the same institution settle the same way in real time.
    let real_time = pre_settle(&client, "CL-B1", H3, (&bob, &bob_id), drug()).await;
    assert_eq!(amounts(&real_time), amounts(&submitted), "{real_time}");

    // Bad input: refused with the field, nothing stored.
    let before = count(&env, B, "select count(*) from claims").await;
    let mut bad = claim(&alice, "310", "outpatient", H3, drug(), "1200.00");
    for (field, value, want, code_) in [
        ("kind", json!("dental"), "kind", ErrorCode::InvalidField),
        ("insutype", json!("330"), "insutype", ErrorCode::InvalidField),
        (
            "medfee_sumamt",
            json!("1100.00"),
            "medfee_sumamt",
            ErrorCode::InvalidField,
        ),
        ("documents", json!([]), "documents", ErrorCode::InvalidField),
        (
            "documents",
            json!([{"kind": "invoice"}]),
            "documents[0].uri",
            ErrorCode::InvalidField,
        ),
        (
            "documents",
            json!([{"kind": "selfie", "uri": "x"}]),
            "documents[0].kind",
            ErrorCode::InvalidField,
        ),
        ("reason", json!("forgot"), "reason", ErrorCode::InvalidField),
        (
            "begntime",
            json!("2999-01-01T00:00:00+08:00"),
            "begntime",
            ErrorCode::InvalidField,
        ),
        (
            "fixmedins_code",
            json!("H00000000000"),
            "fixmedins_code",
            ErrorCode::NotFound,
        ),
        (
            "psn_no",
            json!(uuid::Uuid::now_v7().to_string()),
            "psn_no",
            ErrorCode::NotFound,
        ),
    ] {
        let saved = bad[field].clone();
        bad[field] = value;
        let r = code(&client, "submit-claim", bad.clone()).await;
        assert_eq!(
            (r.0, r.1.as_deref()),
            (Some(code_), Some(want)),
            "{field}: {}",
            r.2
        );
        bad[field] = saved;
    }
    let r = code(
        &client,
        "submit-claim",
        claim(&alice, "390", "maternity", H3, drug(), "1200.00"),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("insutype"))
    );
    assert!(
        r.2.contains("maternity reimbursement is part of employee medical"),
        "{}",
        r.2
    );
    assert_eq!(count(&env, B, "select count(*) from claims").await, before);

    // Review: out-of-order steps refused.
    let r = code(&client, "review-claim", review(&id, "approve", None)).await;
    assert_eq!((r.0, r.1.as_deref()), (Some(ErrorCode::Conflict), Some("action")));
    assert!(
        r.2.contains("a claim that is submitted cannot be taken to approved"),
        "{}",
        r.2
    );
    let r = code(&client, "review-claim", review(&id, "waive", None)).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("action"))
    );
    let r = code(
        &client,
        "review-claim",
        review(&uuid::Uuid::now_v7().to_string(), "start", None),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::NotFound), Some("claim_id"))
    );

    let r = ok(&client, "review-claim", review(&id, "start", None)).await;
    assert_eq!(r["status"], "under-review");
    status_event(&mut tap, &id, "under-review").await;
    let r = code(&client, "review-claim", review(&id, "request-documents", None)).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("reason"))
    );
    let r = ok(
        &client,
        "review-claim",
        review(&id, "request-documents", Some("请邮寄发票原件")),
    )
    .await;
    assert_eq!(
        (&r["status"], &r["status_reason"]),
        (&json!("documents-needed"), &json!("请邮寄发票原件"))
    );
    let e = status_event(&mut tap, &id, "documents-needed").await;
    assert_eq!(e["reason"], "请邮寄发票原件");
    let r = ok(
        &client,
        "add-claim-documents",
        json!({"claim_id": id, "documents": [{"kind": "invoice", "paper_mailed": true}]}),
    )
    .await;
    assert_eq!(
        (&r["status"], &r["documents"]),
        (&json!("under-review"), &json!(2))
    );
    status_event(&mut tap, &id, "under-review").await;

    // Approved: the split fixed, the payment ordered for alice's card account.
    let approved = ok(&client, "review-claim", review(&id, "approve", None)).await;
    assert_eq!(
        (&approved["status"], &approved["final_split"]),
        (&json!("approved"), &json!(true))
    );
    assert_eq!(amounts(&approved), amounts(&submitted));
    status_event(&mut tap, &id, "approved").await;
    let order = event_where(&mut tap, "medical.benefits.claim-payment-ordered", |b| {
        b["claim_id"] == id.as_str()
    })
    .await;
    assert_eq!(
        (&order["amount"], &order["id_number"], &order["card_state"]),
        (&json!("250.00"), &json!(alice_id), &json!("none"))
    );

    // The approved claim used alice's deductible: a real-time outpatient settlement now bears
    // none, the fund pays half of all 1000.00.
    let later = pre_settle(
        &client,
        "CL-A2",
        H3,
        (&alice, &alice_id),
        vec![fee("1", "XA01", "1", "1000.00", "1000.00")],
    )
    .await;
    assert_eq!(
        amounts(&later),
        ["1000.00", "1000.00", "0.00", "500.00", "0.00", "0.00", "500.00"]
    );

    // The bank's result: checked, a failure recorded, then the payment.
    let pay = |outcome: &str, amount: &str, reason: Option<&str>| {
        let mut b =
            json!({"claim_id": id, "outcome": outcome, "amount": amount, "bank_ref": "ICBC-2024-0001"});
        if let Some(r) = reason {
            b["reason"] = json!(r);
        }
        b
    };
    let r = code(&client, "record-claim-payment", pay("paid", "249.99", None)).await;
    assert_eq!((r.0, r.1.as_deref()), (Some(ErrorCode::Conflict), Some("amount")));
    let r = code(&client, "record-claim-payment", pay("failed", "250.00", None)).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::InvalidField), Some("reason"))
    );
    let r = ok(
        &client,
        "record-claim-payment",
        pay("failed", "250.00", Some("金融账户未激活")),
    )
    .await;
    assert_eq!(r["status"], "payment-failed");
    status_event(&mut tap, &id, "payment-failed").await;
    let r = ok(&client, "record-claim-payment", pay("paid", "250.00", None)).await;
    assert_eq!(r["status"], "paid");
    let e = status_event(&mut tap, &id, "paid").await;
    assert_eq!(e["amount"], "250.00");
    let r = code(&client, "record-claim-payment", pay("paid", "250.00", None)).await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("claim_id"))
    );
    let r = ok(&client, "claim-status", json!({"claim_id": id})).await;
    assert_eq!(
        (&r["status"], &r["fund_pay_sumamt"]),
        (&json!("paid"), &json!("250.00"))
    );

    // Maternity at a level-2 hospital: the 310 inpatient terms, 400.00 per admission and 88 %.
    let m = ok(
        &client,
        "submit-claim",
        claim(
            &bob,
            "310",
            "maternity",
            H2,
            vec![fee("1", "F002", "1", "3000.00", "3000.00")],
            "3000.00",
        ),
    )
    .await;
    assert_eq!(
        amounts(&m),
        [
            "3000.00", "3000.00", "400.00", "2288.00", "0.00", "0.00", "2288.00"
        ]
    );

    // Rejected, with its reason; its review is then over.
    let mid = m["claim_id"].as_str().unwrap().to_owned();
    ok(&client, "review-claim", review(&mid, "start", None)).await;
    let r = ok(
        &client,
        "review-claim",
        review(&mid, "reject", Some("分娩不在参保期内")),
    )
    .await;
    assert_eq!(r["status"], "rejected");
    let e = status_event(&mut tap, &mid, "rejected").await;
    assert_eq!(e["reason"], "分娩不在参保期内");
    let r = code(
        &client,
        "add-claim-documents",
        json!({"claim_id": mid, "documents": [invoice()]}),
    )
    .await;
    assert_eq!(
        (r.0, r.1.as_deref()),
        (Some(ErrorCode::Conflict), Some("claim_id"))
    );
    // A rejected claim uses nothing of the year: bob's inpatient deductible is per admission
    // anyway, and his outpatient year is as the pre-settlement left it (no booking).
    assert_eq!(
        count(
            &env,
            B,
            "select count(*) from claims where status in ('approved', 'paid', 'payment-failed')"
        )
        .await,
        1
    );
    app.stop().await;
}

/// Runs the simulated bank; returns once it consumes its queue, so no order is missed.
async fn bank(env: &TestEnv) -> tokio_util::sync::CancellationToken {
    let queue = env.names().subscriber_queue(bank_sim::SUBSCRIBER);
    env.track_queues([queue.clone()]);
    let cfg = bank_sim::SimConfig {
        amqp_url: testkit::amqp_url(),
        prefix: env.prefix(),
        seed: 1,
        fail_account: 0.0,
        fail_production: 0.0,
        delay: std::time::Duration::from_millis(20),
        branch: "工商银行江汉支行".into(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            bank_sim::run(cfg, stop).await.expect("the simulator runs");
        }
    });
    testkit::wait_for("the bank to consume its queue", testkit::WAIT, || async {
        let exists = testkit::services::queue_exists(env, &queue).await;
        (exists && env.consumer_count(&queue).await > 0).then_some(())
    })
    .await;
    stop
}

async fn approved_claim(client: &CommandClient, psn: &str) -> String {
    let c = ok(
        client,
        "submit-claim",
        claim(
            psn,
            "310",
            "outpatient",
            H3,
            vec![fee("1", "XA01", "10", "120.00", "1200.00")],
            "1200.00",
        ),
    )
    .await;
    let id = c["claim_id"].as_str().unwrap().to_owned();
    ok(client, "review-claim", review(&id, "start", None)).await;
    ok(client, "review-claim", review(&id, "approve", None)).await;
    id
}

async fn settles_as(client: &CommandClient, id: &str, status: &str) -> Value {
    testkit::wait_for(&format!("claim {id} {status}"), testkit::WAIT, || async {
        let r = ok(client, "claim-status", json!({"claim_id": id})).await;
        (r["status"] == status).then_some(r)
    })
    .await
}

#[tokio::test]
async fn the_simulated_bank_pays_into_an_activated_card_and_refuses_without_one() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let client = env.client().await;
    let stop = bank(&env).await;
    let employer = credit_code(941);
    let (alice_id, bob_id) = (id_number(941), id_number(942));
    let staff = covered_staff(&client, &env, &employer, &[alice_id.clone(), bob_id.clone()]).await;
    // Bob's card is activated: the row card-issuance's events leave in benefits' projection
    // (tests/card.rs drives the real card service; here only the state matters).
    let db = env.pool(B).await.get().await.unwrap();
    db.execute(
        "insert into card_status (id_number, application_id, state, in_production, step)
         values ($1, 'A-942', 'activated', false, 'activated')",
        &[&bob_id],
    )
    .await
    .unwrap();

    let alice_claim = approved_claim(&client, &staff[0]).await;
    let bob_claim = approved_claim(&client, &staff[1]).await;
    let failed = settles_as(&client, &alice_claim, "payment-failed").await;
    assert_eq!(failed["status_reason"], "无社保卡金融账户");
    let paid = settles_as(&client, &bob_claim, "paid").await;
    assert_eq!(paid["fund_pay_sumamt"], "250.00");
    let bank_ref: String = db
        .query_one(
            "select bank_ref from claims where claim_id = $1::text::uuid",
            &[&bob_claim],
        )
        .await
        .unwrap()
        .get(0);
    assert!(bank_ref.starts_with("PAY") && bank_ref.len() == 15, "{bank_ref}");
    stop.cancel();
    app.stop().await;
}

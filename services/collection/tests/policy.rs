//! Policy as data over the wire: a new rule version is published with set-policy and read
//! back with get-policy, both replies in their published shape (the test kit checks them
//! against `collection.set-policy.result` and `collection.get-policy.result`).

mod common;

use contracts::Line;
use serde_json::json;
use testkit::{TestEnv, send};

/// A set-policy body for pension in a region the seed does not cover, so that no older rule
/// has to be closed or replaced (closing and replacing are tested in `notices.rs`).
fn rule(from: &str, to: Option<&str>, floor: &str) -> serde_json::Value {
    let mut body = json!({"region": "420200", "insurance_type": "pension", "effective_from": from,
        "standard_base": "6500.00", "floor": floor, "cap": "19500.00",
        "employer_rate": "0.16", "employee_rate": "0.08", "flexible_rate": "0.20",
        "deadline": {"kind": "last_working_days", "n": 5},
        "flexible_deadline": {"kind": "debit_day", "day": 20},
        "reason": "bases published"});
    if let Some(to) = to {
        body["effective_to"] = json!(to);
    }
    body
}

#[tokio::test]
async fn policy_versions_are_answered_and_read_back_as_published() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let mut tap = env.tap("social.collection.policy-changed").await;
    let mut versions = Vec::new();
    for body in [
        rule("2025-01", None, "3900.00"),
        rule("2024-01", Some("2024-12"), "3700.00"),
    ] {
        let r = send(&client, Line::Social, "collection", "set-policy", body).await;
        assert!(r.is_ok(), "{r:?}");
        let version = r.result.as_ref().unwrap()["version"].as_i64().expect("a version");
        let changed = tap.expect("social.collection.policy-changed").await;
        assert_eq!(changed.body["version"], version);
        versions.push(version);
    }
    assert_ne!(versions[0], versions[1]);

    let get = |month: &'static str| {
        let client = &client;
        async move {
            let r = send(
                client,
                Line::Social,
                "collection",
                "get-policy",
                json!({"region": "420200", "insurance_type": "pension", "month": month}),
            )
            .await;
            assert!(r.is_ok(), "{r:?}");
            r.result.unwrap()
        }
    };
    let open = get("2025-03").await;
    assert_eq!(open["version"], versions[0]);
    assert_eq!(open["rule"]["floor"], "3900.00");
    assert_eq!(
        open["rule"]["deadline"],
        json!({"kind": "last_working_days", "n": 5})
    );
    assert!(open["rule"].get("effective_to").is_none(), "open-ended: {open}");
    let bounded = get("2024-06").await;
    assert_eq!(bounded["version"], versions[1]);
    assert_eq!(bounded["rule"]["effective_to"], "2024-12", "{bounded}");
    assert_eq!(bounded["rule"]["floor"], "3700.00");
    app.stop().await;
}

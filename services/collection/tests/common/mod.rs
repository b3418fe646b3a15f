//! Spawns collection (and enrollment, which feeds it) in process against the test environment.
#![allow(dead_code)]

use testkit::TestEnv;
pub use testkit::services::Services as Running;

pub fn collection_settings(env: &TestEnv) -> collection::Settings {
    collection::Settings {
        service: env.service_settings("collection"),
        region: "420100".into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    }
}

/// Enrollment and collection, both running, collection assessing Wuhan (420100).
pub async fn spawn(env: &TestEnv) -> Running {
    spawn_in(env, "420100").await
}

/// Enrollment and collection, collection assessing `region` (its policy rules apply).
pub async fn spawn_in(env: &TestEnv, region: &str) -> Running {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    let collection = collection::build(collection::Settings {
        region: region.into(),
        ..collection_settings(env)
    })
    .await
    .expect("collection builds");
    let mut running = Running::new();
    running.start(env, enrollment).start(env, collection);
    running
}

/// The `ok` result of a command (`null` when it has none), or a panic naming the rejection.
pub async fn ok(
    client: &messaging::client::CommandClient,
    line: contracts::Line,
    service: &str,
    name: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = testkit::send(client, line, service, name, body).await;
    assert!(r.is_ok(), "{name}: {r:?}");
    r.result.unwrap_or(serde_json::Value::Null)
}

//! Spawns collection (and enrollment, which feeds it) in process against the test environment.
#![allow(dead_code)]

use testkit::TestEnv;
use tokio_util::sync::CancellationToken;

pub struct Running {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.expect("service task").expect("service ran cleanly");
        }
    }
}

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
    let shutdown = CancellationToken::new();
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    env.track_queues(enrollment.topology().owned_queues(enrollment.names()));
    let collection = collection::build(collection::Settings {
        region: region.into(),
        ..collection_settings(env)
    })
    .await
    .expect("collection builds");
    env.track_queues(collection.topology().owned_queues(collection.names()));
    let tasks = vec![
        tokio::spawn(enrollment.run_until_stopped(shutdown.clone())),
        tokio::spawn(collection.run_until_stopped(shutdown.clone())),
    ];
    Running { shutdown, tasks }
}

//! What the freeze tests and the drills share: the binary, and enrollment with collection
//! running in process (optionally on a drill clock).
#![allow(dead_code)]

use std::process::Output;
use testkit::{TestEnv, WAIT};

pub const WUHAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cutovers/wuhan-2021.yaml");
pub const HANGZHOU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cutovers/hangzhou-2020.yaml");

pub async fn ctl(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_insurancectl"));
    cmd.args(args)
        .env("AMQP_URL", testkit::amqp_url())
        .env("INSURANCE_PREFIX", env.prefix())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("insurancectl finishes")
        .expect("insurancectl runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
pub fn exit(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

pub use testkit::services::Services;

pub async fn spawn(env: &TestEnv) -> Services {
    spawn_on(env, messaging::freeze::ClockSettings::default()).await
}

/// Both services on `clock` (a drill clock: both get the same origin, wall start and speed).
pub async fn spawn_on(env: &TestEnv, clock: messaging::freeze::ClockSettings) -> Services {
    spawn_in(env, clock, "420100").await
}

/// As [`spawn_on`], with collection assessing `region` (its policy rules apply).
pub async fn spawn_in(env: &TestEnv, clock: messaging::freeze::ClockSettings, region: &str) -> Services {
    let settings = |name: &str| drill_settings(env, name, &clock);
    let enrollment = enrollment::build(enrollment::Settings {
        service: settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    let collection = collection::build(collection::Settings {
        service: settings("collection"),
        region: region.into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .expect("collection builds");
    let mut services = Services::new();
    services.start(env, enrollment).start(env, collection);
    services
}

/// A service's settings for these tests: `clock` and a fast freeze tick.
pub fn drill_settings(
    env: &TestEnv,
    name: &str,
    clock: &messaging::freeze::ClockSettings,
) -> messaging::runtime::ServiceSettings {
    let mut s = env.service_settings(name);
    s.messaging.freeze.clock = clock.clone();
    s.messaging.freeze.tick_ms = 50;
    s
}

/// Both control queues consumed, so that a round expects both answers.
pub async fn both_listening(env: &TestEnv) {
    testkit::services::wait_control_consumed(env, &["enrollment", "collection"]).await
}

/// `ctl` with the management API's address (what `subscriber` and `accounts` need) and extra
/// environment variables (passwords).
pub async fn ctl_api(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_insurancectl"));
    cmd.args(args)
        .env("AMQP_URL", testkit::amqp_url())
        .env("INSURANCE_PREFIX", env.prefix())
        .env("RABBITMQ_API_URL", testkit::api_url())
        .envs(vars.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(WAIT * 3, cmd.output())
        .await
        .expect("insurancectl finishes")
        .expect("insurancectl runs")
}

/// Deletes these broker users when dropped, even when the test fails half-way.
pub struct RemoveUsers(pub Vec<String>);

impl Drop for RemoveUsers {
    fn drop(&mut self) {
        let users = std::mem::take(&mut self.0);
        with_admin_api(|api, _| async move {
            for u in users {
                let _ = api.delete_user(&u).await;
            }
        });
    }
}

/// Runs `f` with the administrator's management API and the vhost on a runtime and thread of
/// its own, and waits for it: for clean-up guards, which may run while a test unwinds.
pub fn with_admin_api<F, Fut>(f: F)
where
    F: FnOnce(messaging::management::Api, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let (api, vhost) = admin_api();
                f(api, vhost).await
            })
    })
    .join();
}

/// Removes these subscribers (user, permissions, queues) of an environment when dropped, even
/// when the test fails half-way.
pub struct RemoveSubscribers {
    pub prefix: String,
    pub names: Vec<&'static str>,
}

impl Drop for RemoveSubscribers {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::process::Command::new(env!("CARGO_BIN_EXE_insurancectl"))
                .args(["subscriber", "remove", name, "--force"])
                .env("AMQP_URL", testkit::amqp_url())
                .env("INSURANCE_PREFIX", &self.prefix)
                .env("RABBITMQ_API_URL", testkit::api_url())
                .stdin(std::process::Stdio::null())
                .output();
        }
    }
}

/// The management API as the tests' administrator, and the vhost.
pub fn admin_api() -> (messaging::management::Api, String) {
    let t = messaging::management::amqp_target(&testkit::amqp_url()).expect("AMQP_URL");
    let api = messaging::management::Api::new(&testkit::api_url(), &t.user, &t.password, WAIT)
        .expect("the management API");
    (api, t.vhost)
}

/// Orders a data-sharing freeze of the medical line (`id`, to be announced) and waits until the
/// services have removed the line's shovel.
pub async fn hold_medical_data_sharing(env: &TestEnv, id: &str, reason: &str) {
    let order = [
        "freeze",
        "order",
        "--id",
        id,
        "--lines",
        "medical",
        "--channels",
        "data-sharing",
        "--mode",
        "suspended",
        "--reason",
        reason,
    ];
    exit(&ctl(env, &order).await, 0);
    let (api, vhost) = admin_api();
    let shovel = env.names().data_sharing_shovel(contracts::Line::Medical);
    testkit::wait_for("the medical shovel removed", WAIT, || async {
        api.shovel(&vhost, &shovel).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// `enroll-person` for test person `n` on `line`, effective 2021-12.
pub fn enroll_flexible(n: u32, line: contracts::Line) -> messaging::client::Command {
    testkit::enroll_flexible(n, line, "2021-12")
}

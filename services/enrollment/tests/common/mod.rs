//! Spawns the enrollment service in process against the test environment.
#![allow(dead_code)]

use messaging::LineSwitches;
use testkit::TestEnv;
use testkit::services::Services;

pub const REGION: &str = "420100";

/// Enrollment running in process, with its line switches and ops address at hand.
pub struct Running {
    services: Services,
    pub switches: LineSwitches,
    pub ops: std::net::SocketAddr,
}

impl Running {
    /// Graceful stop: waits for in-flight work and the relay flush.
    pub async fn stop(self) {
        self.services.stop().await
    }
}

pub fn settings(env: &TestEnv) -> enrollment::Settings {
    enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: REGION.into(),
    }
}

pub async fn spawn(env: &TestEnv) -> Running {
    let app = enrollment::build(settings(env)).await.expect("enrollment builds");
    let switches = app.switches();
    let ops = app.ops_addr();
    let mut services = Services::new();
    services.start(env, app);
    Running {
        services,
        switches,
        ops,
    }
}

/// `enroll-person` for test person `n` on `line`, effective 2024-03.
pub fn enroll(n: u32, line: contracts::Line) -> messaging::client::Command {
    testkit::enroll_flexible(n, line, "2024-03")
}

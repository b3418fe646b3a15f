//! The probe service as a process of its own, for tests that must kill or crash a real
//! process. Settings come from `APP__…` variables as for the real services; `PROBE_CRASH=1`
//! makes the `crash` command abort the process.

use messaging::runtime::ServiceSettings;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: ServiceSettings = platform::config::load_service(env!("CARGO_MANIFEST_DIR"))?;
    let _telemetry = platform::telemetry::init("probe", &settings.telemetry)?;
    let crash = std::env::var("PROBE_CRASH").is_ok_and(|v| v == "1");
    let app = testkit::probe::build(settings, crash).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

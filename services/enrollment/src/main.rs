use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = enrollment::Settings::load()?;
    let _telemetry = platform::telemetry::init("enrollment", &settings.service.telemetry)?;
    let app = enrollment::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

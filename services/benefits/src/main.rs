use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = benefits::Settings::load()?;
    let _telemetry = platform::telemetry::init("benefits", &settings.service.telemetry)?;
    let app = benefits::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

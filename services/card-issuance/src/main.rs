use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = card_issuance::Settings::load()?;
    let _telemetry = platform::telemetry::init("card-issuance", &settings.service.telemetry)?;
    let app = card_issuance::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = collection::Settings::load()?;
    let _telemetry = platform::telemetry::init("collection", &settings.service.telemetry)?;
    let broker = settings.service.broker.clone();
    let schedule = settings.schedule.clone();
    let app = collection::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    let scheduler = tokio::spawn(collection::schedule::run(broker, schedule, shutdown.clone()));
    let result = app.run_until_stopped(shutdown).await;
    let _ = scheduler.await;
    result
}

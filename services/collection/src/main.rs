#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = collection::Settings::load()?;
    let telemetry = settings.service.telemetry.clone();
    let (broker, schedule) = (settings.service.broker.clone(), settings.schedule.clone());
    let app = collection::build(settings);
    messaging::runtime::serve_with("collection", &telemetry, app, |_, shutdown| {
        collection::schedule::run(broker, schedule, shutdown)
    })
    .await
}

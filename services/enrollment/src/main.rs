#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = enrollment::Settings::load()?;
    let telemetry = settings.service.telemetry.clone();
    messaging::runtime::serve("enrollment", &telemetry, enrollment::build(settings)).await
}

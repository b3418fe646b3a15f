#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = benefits::Settings::load()?;
    let telemetry = settings.service.telemetry.clone();
    messaging::runtime::serve("benefits", &telemetry, benefits::build(settings)).await
}

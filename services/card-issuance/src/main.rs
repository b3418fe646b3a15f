#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = card_issuance::Settings::load()?;
    let telemetry = settings.service.telemetry.clone();
    messaging::runtime::serve("card-issuance", &telemetry, card_issuance::build(settings)).await
}

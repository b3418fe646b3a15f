#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = notification::Settings::load()?;
    let telemetry = settings.service.telemetry.clone();
    let (sms, notify) = (settings.sms.clone(), settings.notify.clone());
    let app = notification::build(settings);
    messaging::runtime::serve_with("notification", &telemetry, app, |app, shutdown| {
        notification::workers(app, sms, notify, shutdown)
    })
    .await
}

use clap::Parser;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Plays the tax authority against the suite: consumes its subscription and pays.
#[derive(Parser)]
struct Args {
    /// AMQP URL with the tax authority's own credentials (not an operator's).
    #[arg(long, env = "TAX_AUTHORITY_AMQP_URL")]
    amqp_url: String,
    #[arg(long, env = "INSURANCE_PREFIX", default_value = "")]
    prefix: String,
    #[arg(long, default_value = "tax-authority")]
    subscriber: String,
    /// Share paid in full on time.
    #[arg(long, default_value_t = 0.8)]
    full: f64,
    /// Share paid in part (half).
    #[arg(long, default_value_t = 0.1)]
    partial: f64,
    /// Share paid in full, late.
    #[arg(long, default_value_t = 0.05)]
    late: f64,
    #[arg(long, default_value_t = 5000)]
    late_by_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shares = [args.full, args.partial, args.late];
    anyhow::ensure!(
        shares.iter().all(|s| (0.0..=1.0).contains(s)) && shares.iter().sum::<f64>() <= 1.0,
        "--full, --partial and --late are shares between 0 and 1 that add up to at most 1"
    );
    let _telemetry = platform::telemetry::init(
        "tax-authority-sim",
        &platform::telemetry::TelemetrySettings {
            format: platform::telemetry::LogFormat::Pretty,
            ..Default::default()
        },
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    let cfg = tax_authority_sim::SimConfig {
        amqp_url: args.amqp_url,
        prefix: args.prefix,
        subscriber: args.subscriber,
        full: args.full,
        partial: args.partial,
        late: args.late,
        late_by: Duration::from_millis(args.late_by_ms),
    };
    let stats = tax_authority_sim::run(cfg, shutdown).await?;
    tracing::info!(?stats, "tax authority simulator stopped");
    Ok(())
}

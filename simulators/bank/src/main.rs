use clap::Parser;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Plays the cooperating bank: opens accounts, produces and ships cards, through the broker.
#[derive(Parser)]
struct Args {
    #[arg(long, env = "BANK_AMQP_URL")]
    amqp_url: String,
    #[arg(long, env = "INSURANCE_PREFIX", default_value = "")]
    prefix: String,
    /// Failures are predictable from this seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of account openings that fail.
    #[arg(long, default_value_t = 0.1)]
    fail_account: f64,
    /// Share of card productions that fail.
    #[arg(long, default_value_t = 0.1)]
    fail_production: f64,
    /// Pause before each answer.
    #[arg(long, default_value_t = 2000)]
    delay_ms: u64,
    #[arg(long, default_value = "工商银行昆区支行")]
    branch: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fail_account) && (0.0..=1.0).contains(&args.fail_production),
        "--fail-account and --fail-production are shares between 0 and 1"
    );
    let _telemetry = platform::telemetry::init(
        "bank-sim",
        &platform::telemetry::TelemetrySettings {
            format: platform::telemetry::LogFormat::Pretty,
            ..Default::default()
        },
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    let cfg = bank_sim::SimConfig {
        amqp_url: args.amqp_url,
        prefix: args.prefix,
        seed: args.seed,
        fail_account: args.fail_account,
        fail_production: args.fail_production,
        delay: Duration::from_millis(args.delay_ms),
        branch: args.branch,
    };
    let stats = bank_sim::run(cfg, shutdown).await?;
    tracing::info!(?stats, "bank simulator stopped");
    Ok(())
}

use clap::Parser;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Plays the operator's SMS centre over SMPP 3.4; prints every message it receives.
#[derive(Parser)]
struct Args {
    #[arg(long, env = "SMSC_LISTEN", default_value = "127.0.0.1:2775")]
    listen: std::net::SocketAddr,
    #[arg(long, env = "SMSC_SYSTEM_ID", default_value = "insurance")]
    system_id: String,
    #[arg(long, env = "SMSC_PASSWORD")]
    password: String,
    #[arg(long, default_value_t = 500)]
    receipt_delay_ms: u64,
    /// Answer every n-th submit with ESME_RTHROTTLED.
    #[arg(long)]
    throttle_every: Option<u64>,
    /// Numbers whose messages are not delivered (receipt UNDELIV); repeatable.
    #[arg(long = "fail-number")]
    fail_numbers: Vec<String>,
    /// Drop the connection once after this many submits.
    #[arg(long)]
    drop_after: Option<u64>,
    /// Accept the n-th submit and cut the connection before its submit_sm_resp (once).
    #[arg(long)]
    drop_before_response: Option<u64>,
    /// Lose the n-th submit with the connection, unread and unanswered (once).
    #[arg(long)]
    lose_submit: Option<u64>,
    /// Send a receipt again when the ESME has not answered it for this long (a receipt not
    /// answered is always sent again on the next session).
    #[arg(long)]
    receipt_resend_ms: Option<u64>,
    /// Append every message to this JSON-lines file.
    #[arg(long, env = "SMSC_LOG_FILE")]
    log_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = platform::telemetry::init(
        "smsc-sim",
        &platform::telemetry::TelemetrySettings {
            format: platform::telemetry::LogFormat::Pretty,
            ..Default::default()
        },
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    let smsc = smsc_sim::start(smsc_sim::SimConfig {
        listen: args.listen,
        system_id: args.system_id,
        password: args.password,
        receipt_delay: Duration::from_millis(args.receipt_delay_ms),
        throttle_every: args.throttle_every,
        fail_numbers: args.fail_numbers,
        drop_after: args.drop_after,
        drop_before_response: args.drop_before_response,
        lose_submit: args.lose_submit,
        log_file: args.log_file,
        print: true,
        receipt_resend_after: args.receipt_resend_ms.map(Duration::from_millis),
    })
    .await?;
    tracing::info!(addr = %smsc.addr, "SMSC simulator listening");
    shutdown.cancelled().await;
    smsc.stop();
    tracing::info!(counters = ?smsc.counters(), "SMSC simulator stopped");
    Ok(())
}

use clap::Parser;
use std::time::Duration;

/// Plays a designated hospital for one day against the benefits service.
#[derive(Parser)]
struct Args {
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    #[arg(long, env = "INSURANCE_PREFIX", default_value = "")]
    prefix: String,
    /// A seeded institution code (see the benefits migration).
    #[arg(long, default_value = "H42010000001")]
    institution: String,
    /// Patients as `psn_no:id_number`, comma separated.
    #[arg(long, value_delimiter = ',')]
    patients: Vec<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 20)]
    visits: usize,
    #[arg(long, default_value = "2024-05-10T09:00:00+08:00")]
    begntime: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = platform::telemetry::init(
        "institution-sim",
        &platform::telemetry::TelemetrySettings {
            format: platform::telemetry::LogFormat::Pretty,
            ..Default::default()
        },
    )?;
    let patients = args
        .patients
        .iter()
        .map(|p| {
            let (psn_no, id_number) = p
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("a patient is psn_no:id_number, not {p}"))?;
            Ok(institution_sim::Patient {
                psn_no: psn_no.into(),
                id_number: id_number.into(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = messaging::client::CommandClient::connect(
        messaging::BrokerConfig {
            url: args.amqp_url,
            prefix: args.prefix,
            timeout_ms: 10_000,
            tls: Default::default(),
        },
        "institution-sim",
    )
    .await?;
    let report = institution_sim::run_day(
        &client,
        &institution_sim::DayConfig {
            fixmedins_code: args.institution,
            seed: args.seed,
            visits: args.visits,
            begntime: args.begntime,
            patients,
            wait: Duration::from_secs(10),
        },
    )
    .await?;
    tracing::info!(?report, "the day at the institution");
    println!(
        "{}: {} settled ({} repeated by msgid, {} cancelled, {} reversed after a timeout, {} not eligible); \
         medfee_sumamt {} = fund {} + account {} + cash; reconciliation 3201 stmt_rslt {}, 3202 stmt_rslt {}",
        args_institution_label(),
        report.settled,
        report.repeated,
        report.cancelled,
        report.reversed,
        report.not_eligible,
        report.medfee_sumamt,
        report.fund_pay_sumamt,
        report.acct_pay,
        report.totals_rslt,
        report.details_rslt
    );
    client.close().await;
    Ok(())
}

fn args_institution_label() -> &'static str {
    "the institution's day"
}

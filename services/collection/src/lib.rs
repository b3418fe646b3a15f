//! The collection service (征收): policy tables, contribution bases, monthly assessment,
//! payments reported by the tax authority, bank batch debit, arrears and back-payment.
//!
//! - `domain`: the rules without I/O (money, policy, bases, assessment, calendar, deadlines).
//! - `projection`: who is covered by what, built from enrollment events.
//! - `assess`: the monthly assessment as set-based SQL.
//! - `payments`, `rules`: storage helpers; `handlers`: one function per command.
//! - `schedule`: sends the monthly assessment and the daily arrears check on time.

pub mod assess;
pub mod domain;
pub mod freezes;
pub mod handlers;
pub mod payments;
pub mod projection;
pub mod rules;
pub mod schedule;

use contracts::Line;
use messaging::runtime::{ServiceRuntime, ServiceSettings, ServiceSpec};
use messaging::topology::{SentCommands, ServiceTopologySpec};
use serde::Deserialize;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// This agency's 6-digit region code: whose policy rules apply.
    pub region: String,
    #[serde(default)]
    pub schedule: schedule::ScheduleSettings,
}

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let s: Settings = platform::config::load_service(env!("CARGO_MANIFEST_DIR"))?;
        domain::policy::RegionCode::parse(&s.region)
            .map_err(|e| anyhow::anyhow!("configuration field 'region': {e}"))?;
        Ok(s)
    }
}

/// What this service consumes and sends on the broker: the runtime declares it at start-up
/// and `insurancectl topology export` writes it for a deployment.
pub fn topology() -> ServiceTopologySpec {
    ServiceTopologySpec {
        service: contracts::collection::SERVICE,
        command_lines: vec![Line::Medical, Line::Social],
        event_bindings: Line::BUSINESS
            .iter()
            .map(|&l| (l, projection::bindings(l)))
            .collect(),
        // The schedule's monthly assessment and daily arrears check, to itself.
        sends: vec![SentCommands {
            lines: Line::BUSINESS.to_vec(),
            service: contracts::collection::SERVICE,
            commands: schedule::COMMANDS.to_vec(),
        }],
    }
}

/// `configuration/base.yaml`, built in: the queue settings (retry tiers, delivery limit) a
/// deployment's topology is exported with.
pub const BASE_CONFIGURATION: &str = include_str!("../configuration/base.yaml");

pub type Application = ServiceRuntime<handlers::CollectionHandler>;

/// Today in China Standard Time (UTC+8, no daylight saving): the day deadlines are judged by.
pub fn today() -> chrono::NaiveDate {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    chrono::Utc::now().with_timezone(&cst).date_naive()
}

/// Builds the service: schema, migrations, policy seed on first start, topology, ops port.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let names = messaging::Names::new(settings.service.broker.prefix.clone());
    let migrations =
        messaging::runtime::migrations(embedded::migrations::runner(), "collection_schema_history");
    let freeze = std::sync::Arc::new(std::sync::OnceLock::new());
    let spec = ServiceSpec {
        topology: topology(),
        handler: handlers::CollectionHandler {
            names,
            region: settings.region.clone(),
            freeze: freeze.clone(),
        },
        migrations,
    };
    let app = ServiceRuntime::build(settings.service, spec).await?;
    // The handler is built before the runtime that owns the orders; it reads them from here.
    let _ = freeze.set(app.freeze());
    rules::seed(&app.pool()).await?;
    Ok(app)
}

//! The benefits service (待遇), part 1: eligibility from enrollment and collection events,
//! real-time settlement at designated institutions shaped like the NHSA interface, the
//! personal-account ledger with family mutual aid, and daily reconciliation.
//!
//! - `domain`: the rules without I/O (money, eligibility, the settlement split).
//! - `projection`: enrollment and collection events → persons, periods, paid months, arrears,
//!   account credits.
//! - `store`: reading the projection, the policy tables and the ledger inside a transaction.
//! - `handlers`: one function per command (`settle` for the NHSA transactions, `account` for
//!   the ledger and mutual aid, `reconcile` for 3201 / 3202 and the service-wide check,
//!   `policy` for versioned settlement policy, `claims` for manual and maternity
//!   reimbursement with review, issue 10 §2, `filings` for the filings 备案 that change how
//!   settlements and claims settle, issue 10 §1).
//! - `social`: the social line (issue 10 §5): the social projection, retirement approval
//!   and the pension, unemployment and work-injury awards, the monthly payment run.

pub mod account;
pub mod claims;
pub mod domain;
pub mod filings;
pub mod handlers;
pub mod policy;
pub mod projection;
pub mod reconcile;
pub mod settle;
pub mod social;
pub mod store;

use contracts::Line;
use messaging::runtime::{ServiceRuntime, ServiceSettings, ServiceSpec};
use messaging::topology::ServiceTopologySpec;
use serde::Deserialize;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
}

impl Settings {
    /// Loads `configuration/` of this crate (or `APP_CONFIG_DIR`).
    pub fn load() -> anyhow::Result<Self> {
        platform::config::load_service(env!("CARGO_MANIFEST_DIR"))
    }
}

/// What this service consumes and sends on the broker: the runtime declares it at start-up
/// and `insurancectl topology export` writes it for a deployment.
pub fn topology() -> ServiceTopologySpec {
    ServiceTopologySpec {
        service: contracts::benefits::SERVICE,
        // Settlement is medical-line business; retirement, awards and the payment run are
        // social-line business (issue 10 §5).
        command_lines: vec![Line::Medical, Line::Social],
        event_bindings: vec![
            (Line::Medical, projection::bindings(Line::Medical)),
            (Line::Social, social::projection::bindings()),
            (Line::Common, projection::card_bindings()),
        ],
        sends: vec![],
    }
}

/// `configuration/base.yaml`, built in: the queue settings (retry tiers, delivery limit) a
/// deployment's topology is exported with.
pub const BASE_CONFIGURATION: &str = include_str!("../configuration/base.yaml");

pub type Application = ServiceRuntime<handlers::BenefitsHandler>;

/// Builds the service: schema, migrations (with the policy seed), topology, ops port.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let names = messaging::Names::new(settings.service.broker.prefix.clone());
    let migrations =
        messaging::runtime::migrations(embedded::migrations::runner(), "benefits_schema_history");
    let freeze = std::sync::Arc::new(std::sync::OnceLock::new());
    let spec = ServiceSpec {
        topology: topology(),
        handler: handlers::BenefitsHandler {
            names,
            freeze: freeze.clone(),
        },
        migrations,
    };
    let app = ServiceRuntime::build(settings.service, spec).await?;
    // The handler is built before the runtime that owns the orders; it reads them from here.
    let _ = freeze.set(app.freeze());
    Ok(app)
}

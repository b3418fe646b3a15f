//! The enrollment service: persons, employers and their enrollments per insurance type, for
//! the medical and the social line, with every version kept.
//!
//! - `domain`: the rules, no I/O (validation, category ↔ insurance type).
//! - `store`: SQL inside the consumer's transaction.
//! - `handlers`: one function per command.
//! - `Application`: build and run, for `main` and for tests.

pub mod domain;
pub mod handlers;
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
    /// This agency's 6-digit region code (Wuhan: 420100).
    pub region: String,
}

impl Settings {
    /// Loads `configuration/` of this crate (or `APP_CONFIG_DIR`), then validates.
    pub fn load() -> anyhow::Result<Self> {
        let s: Settings = platform::config::load_service(env!("CARGO_MANIFEST_DIR"))?;
        domain::region("region", &s.region)
            .map_err(|e| anyhow::anyhow!("configuration field 'region': {}", e.message))?;
        Ok(s)
    }
}

/// What this service consumes and sends on the broker: the runtime declares it at start-up
/// and `insurancectl topology export` writes it for a deployment.
pub fn topology() -> ServiceTopologySpec {
    ServiceTopologySpec {
        service: contracts::enrollment::SERVICE,
        command_lines: vec![Line::Medical, Line::Social],
        event_bindings: vec![],
        sends: vec![],
    }
}

/// `configuration/base.yaml`, built in: the queue settings (retry tiers, delivery limit) a
/// deployment's topology is exported with.
pub const BASE_CONFIGURATION: &str = include_str!("../configuration/base.yaml");

pub type Application = ServiceRuntime<handlers::EnrollmentHandler>;

/// Builds the service: schema, migrations, topology, ops port. Nothing consumes yet.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let names = messaging::Names::new(settings.service.broker.prefix.clone());
    let migrations =
        messaging::runtime::migrations(embedded::migrations::runner(), "enrollment_schema_history");
    let spec = ServiceSpec {
        topology: topology(),
        handler: handlers::EnrollmentHandler {
            names,
            region: settings.region.clone(),
        },
        migrations,
    };
    ServiceRuntime::build(settings.service, spec).await
}

//! The card-issuance service (社会保障卡): an application from information collection to
//! activation, every failure with its reason and what to do, the agency's rollback, the
//! counter's and the bank's rules, loss, replacement, renewal and cancellation. It serves
//! both lines (line `common`) and learns who may apply from enrollment's events.
//!
//! - `domain`: the rules, no I/O (steps, person-visible status, pick-up and activation).
//! - `store`: SQL inside the consumer's transaction.
//! - `projection`: persons and their insurance types, from enrollment's events.
//! - `handlers`: one function per command.

pub mod domain;
pub mod handlers;
pub mod projection;
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
        service: contracts::card::SERVICE,
        command_lines: vec![Line::Common],
        event_bindings: Line::BUSINESS
            .iter()
            .map(|&l| (l, projection::bindings(l)))
            .collect(),
        sends: vec![],
    }
}

/// `configuration/base.yaml`, built in: the queue settings (retry tiers, delivery limit) a
/// deployment's topology is exported with.
pub const BASE_CONFIGURATION: &str = include_str!("../configuration/base.yaml");

pub type Application = ServiceRuntime<handlers::CardHandler>;

/// Builds the service: schema, migrations, topology, ops port. Nothing consumes yet.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let names = messaging::Names::new(settings.service.broker.prefix.clone());
    let migrations = messaging::runtime::migrations(embedded::migrations::runner(), "card_schema_history");
    let spec = ServiceSpec {
        topology: topology(),
        handler: handlers::CardHandler { names },
        migrations,
    };
    ServiceRuntime::build(settings.service, spec).await
}

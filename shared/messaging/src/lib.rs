//! Messaging on RabbitMQ (lapin) and Postgres, per DESIGN.md §2-§4.
//!
//! - [`names`] and [`topology`]: every exchange and queue name, with a configurable prefix,
//!   and their declaration (quorum queues with delivery limit, parking lots, retry queues,
//!   the events archive stream).
//! - [`outbox`]: the transactional outbox and the relay that publishes it with confirms.
//! - [`inbox`]: once-in-effect consumption.
//! - [`consumer`]: the one consumer loop; services only write [`consumer::Handler`]s.
//! - [`lines`]: pause and resume each line's consumers on their own.
//! - [`connect`]: open an `amqp://` or `amqps://` connection (TLS with a configurable CA).
//! - [`client`]: send a command and wait for its reply (CLI and tests).
//! - [`parking`]: list, show and replay parked messages.
//! - [`management`]: the broker's management HTTP API (subscribers, the data-sharing shovels).

pub mod broker;
pub mod client;
pub mod connect;
pub mod consumer;
pub mod envelope;
pub mod freeze;
pub mod grants;
pub mod health;
pub mod inbox;
pub mod lines;
pub mod management;
pub mod names;
pub mod outbox;
pub mod parking;
pub mod pools;
pub mod runtime;
pub mod topology;
pub mod trace;

pub use broker::{Broker, BrokerConfig};
pub use consumer::{Handled, Handler, HandlerError, Incoming};
pub use envelope::Envelope;
pub use lines::LineSwitches;
pub use names::Names;
pub use outbox::Outgoing;
pub use pools::LinePools;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Migrations for the messaging tables (outbox, inbox), run in the service's own schema with
/// their own history table so that they never collide with the service's migration numbers.
pub fn migrations() -> refinery::Runner {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name("messaging_schema_history");
    runner
}

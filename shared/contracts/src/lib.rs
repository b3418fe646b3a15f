//! The single source of every type that crosses a service boundary.
//!
//! Services exchange only these types over RabbitMQ. JSON Schemas are generated from them
//! (`schemas/`) and a test fails when the committed schemas drift from the Rust types, so a
//! change here is always a visible change to the wire contract.

pub mod asyncapi;
pub mod benefits;
pub mod card;
pub mod collection;
pub mod enrollment;
pub mod envelope;
pub mod freeze;
pub mod ids;
pub mod line;
pub mod notification;
pub mod ordering;
pub mod reply;
pub mod schema;

pub use envelope::{MessageKind, MessageType, headers};
pub use line::{Channel, InsuranceType, Line};
pub use reply::{ErrorBody, ErrorCode, Receipt, Reply, ReplyStatus, Suspension};

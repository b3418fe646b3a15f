//! Enrollment service contract: commands (wire DTOs, validated at the service's edge) and
//! events (facts, emitted only by the service, so already valid).
//!
//! Command fields are plain strings on purpose: a bad ID number must come back as
//! `INVALID_ID_NUMBER` on field `id_number`, not as a generic decoding failure.

pub mod commands;
pub mod events;

pub const SERVICE: &str = "enrollment";

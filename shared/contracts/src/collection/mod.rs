//! Collection service contract (征收): policy, wages and bases, monthly assessment, payments
//! reported by the tax authority, bank batch debit, arrears.
//!
//! Money is a decimal string in yuan with exactly two decimals (`"123.45"`), never a float.
//! Months are `YYYY-MM`. Command fields are plain strings, validated at the service's edge.

pub mod commands;
pub mod events;

pub const SERVICE: &str = "collection";

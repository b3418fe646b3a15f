//! The rules without I/O: money, eligibility, the catalogue split of a fee line and the
//! settlement split. Each file has its tests beside it.

pub mod eligibility;
pub mod money;
pub mod split;

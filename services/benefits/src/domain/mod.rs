//! The rules without I/O: money, eligibility, the catalogue split of a fee line and the
//! settlement split, retirement and the pension. Each file has its tests beside it.

pub mod eligibility;
pub mod money;
pub mod retirement;
pub mod split;

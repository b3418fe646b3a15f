//! Collection rules without I/O: each file holds one rule with its tests beside it.
//!
//! Where each rule comes from (`/work/shared/DOMAIN.md`):
//! - [`money`]: §4 "Money" — yuan with fen, `rust_decimal`, round half up per line item.
//! - [`policy`]: §4 — floors, caps, rates and deadlines per (region, insurance type, period)
//!   with effective dates, as data; the starting figures are in `policy/seed.yaml`.
//! - [`base`]: §4 "Contribution base" — wage evidence order, clamp per insurance type,
//!   standard base or chosen band for flexible workers.
//! - [`assessment`]: §4 "Rates" — employer / employee / flexible / retiree line items, each
//!   rounded separately; the sum of rounded items is what is due.
//! - [`calendar`]: §4 "Calendar" — working days with public holidays and make-up working days.
//! - [`deadline`]: §4 "Calendar" and §8 — month M is collected in M+1; Wuhan, Jinan and bank
//!   debit rules; deadlines inside an outage are extended (Wuhan 2021, Hangzhou 2020).

pub mod assessment;
pub mod base;
pub mod calendar;
pub mod deadline;
pub mod money;
pub mod policy;

pub use assessment::{Category, LineItem, Payer, Totals, assess, totals};
pub use base::{BaseDetermination, BaseError, BaseInput, BaseSource, Clamp, WageEvidence, determine_base};
pub use calendar::{Calendar, CalendarError};
pub use deadline::{
    DayOfMonth, DeadlineRule, DeadlineRuleError, FreezeError, FreezeWindow, WorkingDays, deadline,
};
pub use money::{Money, MoneyError};
pub use policy::{Period, PolicyError, PolicyRule, PolicySeed, PolicyTable, RegionCode, RegionCodeError};

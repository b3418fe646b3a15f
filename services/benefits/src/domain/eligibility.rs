//! Who is covered on a day, from the facts the projection keeps (DOMAIN.md §5):
//!
//! - employees (and everyone else who pays): covered from the month after the first paid
//!   month (缴费次月享受), as long as enrolled and not in benefit-affecting arrears;
//! - flexible workers on their first enrollment: 6 consecutive paid months, covered from the
//!   7th;
//! - arrears block coverage from the date collection gives (`benefits_affected_from`) until
//!   back-payment restores it (from the payment on, or for the whole gap where policy says);
//! - retirees who reached the minimum years keep basic medical coverage (310) without paying;
//!   only their large-amount premium (330) follows payment and arrears.
//!
//! Months are the first day of the month.

use chrono::{Datelike, Months, NaiveDate};
use contracts::InsuranceType;
use std::collections::BTreeSet;

/// First day of `d`'s month.
pub fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("every month has a 1st")
}

pub fn add_months(m: NaiveDate, n: u32) -> NaiveDate {
    m.checked_add_months(Months::new(n)).expect("a month in range")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Employee,
    Flexible,
    Retiree,
    Resident,
}

impl Category {
    pub fn parse(s: &str) -> Category {
        match s {
            "flexible" => Category::Flexible,
            "retiree" => Category::Retiree,
            "resident" => Category::Resident,
            _ => Category::Employee,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    /// Last covered month, inclusive.
    pub to: Option<NaiveDate>,
    /// `suspended`, `terminated`, `removed`, `transferred-out`.
    pub end_reason: Option<String>,
}

impl Period {
    fn contains(&self, m: NaiveDate) -> bool {
        self.from <= m && self.to.is_none_or(|t| m <= t)
    }
}

/// Coverage blocked from `from` (inclusive) until `until` (exclusive; `None` while unpaid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub category: Category,
    pub minimum_years_met: bool,
    pub first_enrollment: bool,
    /// Enrollment periods of the insurance type judged.
    pub periods: Vec<Period>,
    /// Paid months of the insurance type judged (for a retiree's 310: ignored).
    pub paid: BTreeSet<NaiveDate>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotEnrolled,
    Suspended,
    Terminated,
    /// A flexible worker's first 6 months.
    WaitingPeriod,
    /// No month paid yet before this one.
    NotYetPaid,
    Arrears,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotEnrolled => "not-enrolled",
            Reason::Suspended => "suspended",
            Reason::Terminated => "terminated",
            Reason::WaitingPeriod => "waiting-period",
            Reason::NotYetPaid => "not-yet-paid",
            Reason::Arrears => "arrears",
        }
    }
}

/// The months a flexible worker on first enrollment must have paid in a row.
pub const FLEXIBLE_WAITING_MONTHS: u32 = 6;

/// The first month a flexible worker on first enrollment is covered: the month after the
/// first run of 6 consecutive paid months.
fn waiting_period_end(paid: &BTreeSet<NaiveDate>) -> Option<NaiveDate> {
    let mut run_start: Option<NaiveDate> = None;
    let mut prev: Option<NaiveDate> = None;
    for &m in paid {
        run_start = match (run_start, prev) {
            (Some(s), Some(p)) if add_months(p, 1) == m => Some(s),
            _ => Some(m),
        };
        prev = Some(m);
        let s = run_start.expect("set above");
        if add_months(s, FLEXIBLE_WAITING_MONTHS - 1) == m {
            return Some(add_months(s, FLEXIBLE_WAITING_MONTHS));
        }
    }
    None
}

/// Whether care on `day` is covered under `t`; `Err` names why not.
pub fn judge(f: &Facts, t: InsuranceType, day: NaiveDate) -> Result<(), Reason> {
    let m = month_of(day);
    if !f.periods.iter().any(|p| p.contains(m)) {
        let last = f.periods.iter().filter(|p| p.from <= m).max_by_key(|p| p.from);
        return Err(match last.and_then(|p| p.end_reason.as_deref()) {
            Some("suspended") | Some("removed") => Reason::Suspended,
            Some(_) => Reason::Terminated,
            None => Reason::NotEnrolled,
        });
    }
    if f.category == Category::Retiree && f.minimum_years_met && t == InsuranceType::EmployeeMedical {
        return Ok(());
    }
    if f.category == Category::Flexible && f.first_enrollment {
        match waiting_period_end(&f.paid) {
            Some(start) if start <= m => {}
            _ => return Err(Reason::WaitingPeriod),
        }
    } else {
        match f.paid.iter().next() {
            Some(&first) if add_months(first, 1) <= m => {}
            _ => return Err(Reason::NotYetPaid),
        }
    }
    if f.blocks
        .iter()
        .any(|b| b.from <= day && b.until.is_none_or(|u| day < u))
    {
        return Err(Reason::Arrears);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn facts(category: Category, first: bool, paid: &[&str]) -> Facts {
        Facts {
            category,
            minimum_years_met: true,
            first_enrollment: first,
            periods: vec![Period {
                from: d("2024-01-01"),
                to: None,
                end_reason: None,
            }],
            paid: paid.iter().map(|s| d(&format!("{s}-01"))).collect(),
            blocks: vec![],
        }
    }

    const EMP: InsuranceType = InsuranceType::EmployeeMedical;

    #[test]
    fn an_employee_is_covered_from_the_month_after_the_first_paid_month() {
        let f = facts(Category::Employee, false, &["2024-03"]);
        assert_eq!(judge(&f, EMP, d("2024-03-31")), Err(Reason::NotYetPaid));
        assert_eq!(judge(&f, EMP, d("2024-04-01")), Ok(()));
        assert_eq!(judge(&f, EMP, d("2023-12-31")), Err(Reason::NotEnrolled));
    }

    #[test]
    fn a_first_time_flexible_worker_waits_for_six_consecutive_paid_months() {
        let mut f = facts(
            Category::Flexible,
            true,
            &["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"],
        );
        assert_eq!(judge(&f, EMP, d("2024-07-15")), Err(Reason::WaitingPeriod));
        f.paid.insert(d("2024-06-01"));
        assert_eq!(judge(&f, EMP, d("2024-06-30")), Err(Reason::WaitingPeriod));
        assert_eq!(judge(&f, EMP, d("2024-07-01")), Ok(()));
        // A gap restarts the count.
        let g = facts(
            Category::Flexible,
            true,
            &[
                "2024-01", "2024-02", "2024-04", "2024-05", "2024-06", "2024-07", "2024-08", "2024-09",
            ],
        );
        assert_eq!(judge(&g, EMP, d("2024-09-15")), Err(Reason::WaitingPeriod));
        assert_eq!(judge(&g, EMP, d("2024-10-01")), Ok(()));
        // Not on first enrollment: the employee rule.
        let h = facts(Category::Flexible, false, &["2024-01"]);
        assert_eq!(judge(&h, EMP, d("2024-02-01")), Ok(()));
    }

    #[test]
    fn arrears_block_from_the_affected_date_until_restored() {
        let mut f = facts(Category::Employee, false, &["2024-01", "2024-02"]);
        f.blocks.push(Block {
            from: d("2024-04-01"),
            until: None,
        });
        assert_eq!(judge(&f, EMP, d("2024-03-31")), Ok(()));
        assert_eq!(judge(&f, EMP, d("2024-04-01")), Err(Reason::Arrears));
        f.blocks[0].until = Some(d("2024-04-20"));
        assert_eq!(judge(&f, EMP, d("2024-04-19")), Err(Reason::Arrears));
        assert_eq!(judge(&f, EMP, d("2024-04-20")), Ok(()));
        // Retroactive: an empty block.
        f.blocks[0].until = Some(d("2024-04-01"));
        assert_eq!(judge(&f, EMP, d("2024-04-02")), Ok(()));
    }

    #[test]
    fn a_retiree_with_the_minimum_years_keeps_basic_coverage_without_paying() {
        let mut f = facts(Category::Retiree, false, &[]);
        f.blocks.push(Block {
            from: d("2024-02-01"),
            until: None,
        });
        assert_eq!(judge(&f, EMP, d("2024-01-01")), Ok(()));
        assert_eq!(judge(&f, EMP, d("2024-05-01")), Ok(()));
        assert_eq!(
            judge(&f, InsuranceType::LargeAmountMedical, d("2024-05-01")),
            Err(Reason::NotYetPaid)
        );
        f.minimum_years_met = false;
        assert_eq!(judge(&f, EMP, d("2024-05-01")), Err(Reason::NotYetPaid));
    }

    #[test]
    fn an_ended_period_names_why() {
        let mut f = facts(Category::Employee, false, &["2024-01"]);
        f.periods[0].to = Some(d("2024-05-01"));
        f.periods[0].end_reason = Some("suspended".into());
        assert_eq!(judge(&f, EMP, d("2024-05-31")), Ok(()));
        assert_eq!(judge(&f, EMP, d("2024-06-01")), Err(Reason::Suspended));
        f.periods[0].end_reason = Some("terminated".into());
        assert_eq!(judge(&f, EMP, d("2024-06-01")), Err(Reason::Terminated));
    }
}

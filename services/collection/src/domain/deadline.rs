//! Payment deadlines (缴费期限) and how outages (停机) extend them.
//!
//! Sources, DOMAIN.md §4 "Calendar" and §8:
//! - which month a deadline falls in is policy data ([`DeadlineMonth`]): Hangzhou collects
//!   month M in M+1, Wuhan and Jinan within M itself; every rule here is applied to that
//!   collection month (the variant names say "following month" from when M+1 was the only
//!   choice; they are kept because they are the published spelling);
//! - Wuhan: employers finish before the last 5 working days of the month
//!   ([`DeadlineRule::LastWorkingDays`]); flexible workers on bank batch debit must have funds
//!   on the card by the 20th ([`DeadlineRule::DebitDay`]);
//! - Jinan: the deadline moved from the 15th ([`DeadlineRule::DayOfFollowingMonth`]) to the
//!   end of the month ([`DeadlineRule::EndOfFollowingMonth`]), by a policy change with an
//!   effective date (two policy rows, see `policy.rs`);
//! - Wuhan December 2021: "every deadline falling inside the stop is extended 顺延";
//!   Hangzhou 2020: "July's declaration period moved to 8-1 → 8-25" ([`FreezeWindow`]).
//!
//! A deadline is a date and is inclusive: a payment made at any time on that day is on time;
//! arrears (欠费) start the next day.

use std::fmt;

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime};
use contracts::ids::YearMonth;
use serde::{Deserialize, Deserializer, Serialize};

use super::calendar::Calendar;

/// Why a number is not a usable count or day in a [`DeadlineRule`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineRuleError {
    #[error(
        "`n` (number of last working days) must be between 1 and {max}, but is {value}",
        max = WorkingDays::MAX
    )]
    WorkingDaysOutOfRange { value: u8 },
    #[error("`day` (day of the month) must be between 1 and 31, but is {value}")]
    DayOutOfRange { value: u8 },
}

/// How many working days at the end of a month are reserved (Wuhan: 5), 1 to
/// [`WorkingDays::MAX`].
///
/// Bounded so that every month of a valid [`Calendar`] has that many working days, which makes
/// [`Calendar::last_working_days`] total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct WorkingDays(u8);

impl WorkingDays {
    /// The largest count a rule may use; see [`super::calendar::MIN_WORKING_DAYS_PER_MONTH`].
    pub const MAX: u8 = 10;

    /// # Errors
    ///
    /// [`DeadlineRuleError::WorkingDaysOutOfRange`] outside 1..=[`WorkingDays::MAX`].
    pub fn new(value: u8) -> Result<Self, DeadlineRuleError> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DeadlineRuleError::WorkingDaysOutOfRange { value })
        }
    }

    #[must_use]
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for WorkingDays {
    type Error = DeadlineRuleError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<WorkingDays> for u8 {
    fn from(value: WorkingDays) -> u8 {
        value.0
    }
}

/// A day of the month, 1-31. In a shorter month, a day past its end means its last day
/// (31 in February is 28 or 29), so "the 31st" can be written once for every month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct DayOfMonth(u8);

impl DayOfMonth {
    /// # Errors
    ///
    /// [`DeadlineRuleError::DayOutOfRange`] outside 1..=31.
    pub fn new(value: u8) -> Result<Self, DeadlineRuleError> {
        if (1..=31).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DeadlineRuleError::DayOutOfRange { value })
        }
    }

    #[must_use]
    pub fn get(self) -> u8 {
        self.0
    }

    /// This day in the month starting on `first`, or the month's last day if it is shorter.
    fn in_month(self, first: NaiveDate) -> NaiveDate {
        let last = last_day_of_month(first);
        first.with_day(u32::from(self.0)).map_or(last, |d| d.min(last))
    }
}

impl TryFrom<u8> for DayOfMonth {
    type Error = DeadlineRuleError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DayOfMonth> for u8 {
    fn from(value: DayOfMonth) -> u8 {
        value.0
    }
}

/// When the contribution for a month must be paid, as data per policy row.
///
/// Serialised with a `kind` tag, e.g. `{ kind: last_working_days, n: 5 }`.
/// Every variant is applied to the collection month the policy row's [`DeadlineMonth`]
/// chooses (M itself or M+1). Calendar-day rules are not moved off weekends or holidays: DOMAIN.md states no such
/// rule, payment channels (tax app, bank) work on non-working days, and where a bureau does
/// move a date it publishes it, which is expressed as a [`FreezeWindow`] with `extend_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadlineRule {
    /// Finish before the last `n` working days of M+1 (Wuhan employers, n = 5): the deadline is
    /// the calendar day before the first of those `n` days (which may be a weekend).
    LastWorkingDays { n: WorkingDays },
    /// The `day`-th of M+1 (Jinan before its change: the 15th).
    DayOfFollowingMonth { day: DayOfMonth },
    /// The last calendar day of M+1 (Jinan after its change).
    ///
    /// An empty struct variant rather than a unit variant on purpose: serde ignores unknown
    /// fields on unit variants of internally tagged enums, so `{ kind: end_of_following_month,
    /// day: 15 }` (a half-edited row) would load silently; with `{}` it is refused.
    EndOfFollowingMonth {},
    /// The day of M+1 on which the bank starts the batch debit (批扣) (Wuhan flexible workers:
    /// the 20th): the money must be on the card on that day, and other ways to pay are closed
    /// during the debit window. Same date arithmetic as `DayOfFollowingMonth`, kept apart
    /// because notifications and payment routing differ.
    DebitDay { day: DayOfMonth },
}

impl fmt::Display for DeadlineRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadlineRule::LastWorkingDays { n } => {
                write!(
                    f,
                    "before the last {} working days of the following month",
                    n.get()
                )
            }
            DeadlineRule::DayOfFollowingMonth { day } => {
                write!(f, "day {} of the following month", day.get())
            }
            DeadlineRule::EndOfFollowingMonth {} => f.write_str("end of the following month"),
            DeadlineRule::DebitDay { day } => {
                write!(f, "bank batch debit on day {} of the following month", day.get())
            }
        }
    }
}

/// Why a freeze window is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreezeError {
    #[error("freeze `end` {end} is not after `start` {start}")]
    EndNotAfterStart {
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
    #[error(
        "freeze `extend_to` {extend_to} is not after the freeze, which ends at {end}; an \
         extended deadline must leave time to pay"
    )]
    ExtendToInsideFreeze {
        extend_to: NaiveDate,
        end: NaiveDateTime,
    },
}

/// A period during which a line could not take payments or declarations (an outage order),
/// in local time (Beijing, UTC+8, as the notices state it).
///
/// The caller passes only the freezes of the deadline's line and channel: which business a
/// freeze stops is the outage order's concern, not this module's. "24:00" in a notice is
/// 00:00 of the next day (`2020-08-13T00:00:00` for "8-12 24:00").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FreezeWindow {
    start: NaiveDateTime,
    end: NaiveDateTime,
    extend_to: Option<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
struct FreezeWindowFields {
    start: NaiveDateTime,
    end: NaiveDateTime,
    #[serde(default)]
    extend_to: Option<NaiveDate>,
}

impl<'de> Deserialize<'de> for FreezeWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = FreezeWindowFields::deserialize(deserializer)?;
        FreezeWindow::new(f.start, f.end, f.extend_to).map_err(serde::de::Error::custom)
    }
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN)
}

fn last_day_of_month(first: NaiveDate) -> NaiveDate {
    first
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(first)
}

impl FreezeWindow {
    /// `extend_to`, when the order sets one, replaces the computed extension (Hangzhou 2020:
    /// July's declaration moved to end on 8-25).
    ///
    /// # Errors
    ///
    /// [`FreezeError`] if `end` is not after `start`, or `extend_to` falls before the first
    /// whole day after the freeze.
    pub fn new(
        start: NaiveDateTime,
        end: NaiveDateTime,
        extend_to: Option<NaiveDate>,
    ) -> Result<Self, FreezeError> {
        if end <= start {
            return Err(FreezeError::EndNotAfterStart { start, end });
        }
        let window = Self {
            start,
            end,
            extend_to,
        };
        if let Some(extend_to) = extend_to
            && extend_to < window.resume_day()
        {
            return Err(FreezeError::ExtendToInsideFreeze { extend_to, end });
        }
        Ok(window)
    }

    #[must_use]
    pub fn start(&self) -> NaiveDateTime {
        self.start
    }

    #[must_use]
    pub fn end(&self) -> NaiveDateTime {
        self.end
    }

    #[must_use]
    pub fn extend_to(&self) -> Option<NaiveDate> {
        self.extend_to
    }

    /// The first whole day after the freeze: the end date if the freeze ends at midnight,
    /// else the next day (a freeze ending 12-31 23:00 gives back 01-01).
    fn resume_day(&self) -> NaiveDate {
        if self.end.time() == NaiveTime::MIN {
            self.end.date()
        } else {
            Calendar::next_day(self.end.date())
        }
    }

    /// Whether the freeze takes away any part of the deadline day.
    pub(crate) fn covers(&self, deadline: NaiveDate) -> bool {
        self.start < midnight(Calendar::next_day(deadline)) && self.end > midnight(deadline)
    }

    /// The extended deadline for a deadline this freeze covers; see [`deadline`].
    fn extend(&self, deadline: NaiveDate, calendar: &Calendar) -> NaiveDate {
        if let Some(extend_to) = self.extend_to {
            return extend_to.max(deadline);
        }
        let resume = self.resume_day();
        let first_working = calendar.working_day_on_or_after(resume);
        let whole_days_left = (midnight(Calendar::next_day(deadline)) - self.start).num_days();
        let restored = u64::try_from(whole_days_left - 1)
            .ok()
            .and_then(|days| resume.checked_add_days(Days::new(days)));
        restored.map_or(first_working, |restored| restored.max(first_working))
    }
}

/// Which month a month's contributions are collected in: policy data per region
/// (DOMAIN.md §4 "Calendar"). Wuhan and Jinan collect month M within M itself (Wuhan March
/// 2022: by 03-24), Hangzhou collects M in M+1. The [`DeadlineRule`] is applied to that month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineMonth {
    /// Month M is paid within M (Wuhan, Jinan).
    SameMonth,
    /// Month M is declared and collected in M+1 (Hangzhou). The default, because policy rows
    /// written before the field existed were all applied to M+1.
    #[default]
    NextMonth,
}

impl DeadlineMonth {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineMonth::SameMonth => "same_month",
            DeadlineMonth::NextMonth => "next_month",
        }
    }

    /// The first day of the month in which `month_assessed` is collected.
    #[must_use]
    pub fn collection_month(self, month_assessed: YearMonth) -> NaiveDate {
        let assessed = month_assessed.first_day();
        match self {
            DeadlineMonth::SameMonth => assessed,
            // Computed on dates, not `YearMonth`, so that 2200-12 (the last YearMonth) works too.
            DeadlineMonth::NextMonth => assessed.checked_add_months(Months::new(1)).unwrap_or(assessed),
        }
    }
}

impl fmt::Display for DeadlineMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [`deadline`] with the rule applied to the collection month `in_month` chooses (policy
/// data): the function every policy row goes through.
#[must_use]
pub fn deadline_in(
    month_assessed: YearMonth,
    in_month: DeadlineMonth,
    rule: &DeadlineRule,
    calendar: &Calendar,
    freezes: &[FreezeWindow],
) -> NaiveDate {
    extend_by(
        plain_deadline(in_month.collection_month(month_assessed), rule, calendar),
        calendar,
        freezes,
    )
}

/// A plain deadline moved by `freezes` (steps 2 to 4 of [`deadline`]). Always applied to the
/// plain deadline, never to one already extended: an extended deadline that a longer freeze
/// still covers would otherwise be extended twice.
#[must_use]
pub fn extend_by(plain: NaiveDate, calendar: &Calendar, freezes: &[FreezeWindow]) -> NaiveDate {
    let mut current = plain;
    // Each round moves the deadline past every freeze that covered it, so no freeze applies
    // twice and `freezes.len()` rounds always suffice.
    for _ in 0..freezes.len() {
        let extended = freezes
            .iter()
            .filter(|f| f.covers(current))
            .map(|f| f.extend(current, calendar))
            .max();
        match extended {
            Some(next) if next > current => current = next,
            _ => break,
        }
    }
    current
}

/// The deadline for the contributions of `month_assessed` under `rule`, collected in M+1
/// ([`DeadlineMonth::NextMonth`]; see [`deadline_in`] for the month as policy data), extended
/// by the freezes of its line.
///
/// 1. The plain deadline is `rule` applied to the month after `month_assessed` (see
///    [`DeadlineRule`]); working days come from `calendar`.
/// 2. A freeze *covers* the deadline if it takes away any part of the deadline day
///    (`start < deadline + 1 day 00:00` and `end > deadline 00:00`).
/// 3. A covered deadline moves to `extend_to` if the freeze sets one (never earlier than the
///    plain deadline). Otherwise it moves by what the freeze took: let `left` be the whole
///    days (24-hour periods, rounded down) between the freeze's start and the end of the
///    deadline day, and `resume` the first whole day after the freeze. The payer gets those
///    `left` days back starting on `resume`, so the new deadline is `resume + left - 1`, but
///    at least the first working day on or after `resume` (so that a freeze starting in the
///    deadline's last hours still leaves a working day to pay).
/// 4. If the new deadline falls in another freeze, step 3 is repeated; when several freezes
///    cover the same deadline, the latest extension wins.
///
/// Wuhan, November 2021 under "last 5 working days" → plain deadline 12-26 (Sunday before
/// 12-27); the stop 12-22 18:00 → 12-31 23:00 covers it with 4 whole days left; resume is
/// 2022-01-01, so 01-04, which is also the first working day after New Year 2022.
///
/// No freeze, no change: with an empty `freezes` this is the plain rule.
#[must_use]
pub fn deadline(
    month_assessed: YearMonth,
    rule: &DeadlineRule,
    calendar: &Calendar,
    freezes: &[FreezeWindow],
) -> NaiveDate {
    deadline_in(month_assessed, DeadlineMonth::NextMonth, rule, calendar, freezes)
}

/// Step 1 of [`deadline`]: the rule applied to the collection month starting on `collected`,
/// without freezes.
fn plain_deadline(collected: NaiveDate, rule: &DeadlineRule, calendar: &Calendar) -> NaiveDate {
    match rule {
        DeadlineRule::LastWorkingDays { n } => {
            let first_reserved = calendar.first_of_last_working_days(collected, *n);
            first_reserved.pred_opt().unwrap_or(first_reserved)
        }
        DeadlineRule::DayOfFollowingMonth { day } | DeadlineRule::DebitDay { day } => day.in_month(collected),
        DeadlineRule::EndOfFollowingMonth {} => last_day_of_month(collected),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_deadline_month_is_policy_data() {
        let cal = calendar();
        let five = last(5);
        let cases: &[(&str, DeadlineMonth, DeadlineRule, &str, &str)] = &[
            (
                "2022-03",
                DeadlineMonth::SameMonth,
                five,
                "2022-03-24",
                "Wuhan: March 2022 before 03-25, as 03-25 … 03-31 are the last 5 working days",
            ),
            (
                "2022-03",
                DeadlineMonth::NextMonth,
                five,
                "2022-04-24",
                "the same rule collected in M+1 (what every region got before)",
            ),
            (
                "2022-02",
                DeadlineMonth::SameMonth,
                five,
                "2022-02-21",
                "Wuhan February 2022: 02-22 … 02-28 are the last 5 working days",
            ),
            (
                "2020-01",
                DeadlineMonth::SameMonth,
                day_of(15),
                "2020-01-15",
                "Jinan January 2020: the 15th of the month itself",
            ),
            (
                "2020-02",
                DeadlineMonth::SameMonth,
                DeadlineRule::EndOfFollowingMonth {},
                "2020-02-29",
                "Jinan from February 2020: the end of the month itself",
            ),
            (
                "2020-07",
                DeadlineMonth::NextMonth,
                day_of(15),
                "2020-08-15",
                "Hangzhou: July collected in August",
            ),
            (
                "2200-12",
                DeadlineMonth::NextMonth,
                DeadlineRule::EndOfFollowingMonth {},
                "2201-01-31",
                "the last YearMonth collected in M+1",
            ),
        ];
        for (month, in_month, rule, expected, why) in cases {
            assert_eq!(
                deadline_in(ym(month), *in_month, rule, &cal, &[]),
                date(expected),
                "{month} {in_month} under {rule}: {why}"
            );
        }
        assert_eq!(
            serde_json::to_value(DeadlineMonth::SameMonth).unwrap(),
            serde_json::json!("same_month")
        );
        assert!(serde_json::from_str::<DeadlineMonth>(r#""this_month""#).is_err());
    }

    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn at(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    fn ym(s: &str) -> YearMonth {
        YearMonth::parse(s).unwrap()
    }

    fn last(n: u8) -> DeadlineRule {
        DeadlineRule::LastWorkingDays {
            n: WorkingDays::new(n).unwrap(),
        }
    }

    fn day_of(day: u8) -> DeadlineRule {
        DeadlineRule::DayOfFollowingMonth {
            day: DayOfMonth::new(day).unwrap(),
        }
    }

    fn debit(day: u8) -> DeadlineRule {
        DeadlineRule::DebitDay {
            day: DayOfMonth::new(day).unwrap(),
        }
    }

    fn freeze(start: &str, end: &str, extend_to: Option<&str>) -> FreezeWindow {
        FreezeWindow::new(at(start), at(end), extend_to.map(date)).unwrap()
    }

    /// The 2020 and 2021 holidays the tests touch, and New Year 2022 (Jan 1-3).
    fn calendar() -> Calendar {
        let holidays = [
            "2020-01-24",
            "2020-01-25",
            "2020-01-26",
            "2020-01-27",
            "2020-01-28",
            "2020-01-29",
            "2020-01-30",
            "2020-01-31",
            "2020-02-01",
            "2020-02-02",
            "2021-10-01",
            "2021-10-04",
            "2021-10-05",
            "2021-10-06",
            "2021-10-07",
            "2022-01-01",
            "2022-01-02",
            "2022-01-03",
        ];
        let extra = ["2020-01-19", "2021-09-26", "2021-10-09"];
        Calendar::new(
            holidays.iter().map(|d| date(d)).collect::<BTreeSet<_>>(),
            extra.iter().map(|d| date(d)).collect::<BTreeSet<_>>(),
        )
        .unwrap()
    }

    /// The Wuhan stop of December 2021 (DOMAIN.md §8).
    fn wuhan_stop() -> FreezeWindow {
        freeze("2021-12-22T18:00:00", "2021-12-31T23:00:00", None)
    }

    #[test]
    fn plain_rules_without_freezes() {
        let cal = calendar();
        let cases: &[(&str, DeadlineRule, &str, &str)] = &[
            (
                "2021-11",
                last(5),
                "2021-12-26",
                "Wuhan: last 5 working days of Dec 2021 are 12-27 … 12-31, deadline the day before",
            ),
            (
                "2019-12",
                last(5),
                "2020-01-18",
                "last 5 working days of Jan 2020 cross Spring Festival and include make-up Sunday 01-19",
            ),
            (
                "2021-08",
                last(5),
                "2021-09-25",
                "make-up Sunday 09-26 is one of the last 5 working days of Sep 2021",
            ),
            ("2019-11", day_of(15), "2019-12-15", "Jinan old rule: 15th of M+1"),
            (
                "2020-01",
                day_of(15),
                "2020-02-15",
                "calendar-day rules are not moved off a Saturday",
            ),
            (
                "2021-01",
                day_of(31),
                "2021-02-28",
                "day 31 in February is its last day",
            ),
            (
                "2023-01",
                day_of(30),
                "2023-02-28",
                "day 30 in a non-leap February",
            ),
            ("2024-01", day_of(30), "2024-02-29", "day 30 in a leap February"),
            (
                "2021-11",
                DeadlineRule::EndOfFollowingMonth {},
                "2021-12-31",
                "Jinan new rule",
            ),
            (
                "2020-11",
                DeadlineRule::EndOfFollowingMonth {},
                "2020-12-31",
                "November is collected by the end of December",
            ),
            (
                "2021-12",
                DeadlineRule::EndOfFollowingMonth {},
                "2022-01-31",
                "December is collected in January of the next year",
            ),
            (
                "2021-11",
                debit(20),
                "2021-12-20",
                "Wuhan bank batch debit on the 20th",
            ),
            (
                "2200-12",
                DeadlineRule::EndOfFollowingMonth {},
                "2201-01-31",
                "the last YearMonth still has a deadline",
            ),
        ];
        for (month, rule, expected, why) in cases {
            assert_eq!(
                deadline(ym(month), rule, &cal, &[]),
                date(expected),
                "{month} under {rule}: {why}"
            );
        }
    }

    #[test]
    fn wuhan_december_2021_stop_extends_what_falls_inside() {
        let cal = calendar();
        let stop = [wuhan_stop()];
        let cases: &[(&str, DeadlineRule, &str, &str)] = &[
            (
                "2021-11",
                last(5),
                "2022-01-04",
                "12-26 is inside the stop; 4 whole days were left at 12-22 18:00; \
                 given back from 01-01 → 01-04 (Jan 1-3 is the New Year holiday anyway)",
            ),
            (
                "2021-11",
                day_of(22),
                "2022-01-04",
                "only 6 hours of 12-22 were left: at least the first working day after the stop",
            ),
            (
                "2021-11",
                day_of(31),
                "2022-01-09",
                "12-31 is inside the stop; 9 whole days were left; 01-01 + 9 - 1 = 01-09",
            ),
            (
                "2021-11",
                debit(20),
                "2021-12-20",
                "the debit day is before the stop: unchanged",
            ),
            (
                "2021-12",
                debit(20),
                "2022-01-20",
                "December's deadline is in January, after the stop: unchanged",
            ),
        ];
        for (month, rule, expected, why) in cases {
            assert_eq!(
                deadline(ym(month), rule, &cal, &stop),
                date(expected),
                "{month} under {rule}: {why}"
            );
        }
        // Without the New Year holiday in the calendar, the 6-hour case lands on Monday 01-03.
        assert_eq!(
            deadline(ym("2021-11"), &day_of(22), &Calendar::default(), &stop),
            date("2022-01-03")
        );
    }

    #[test]
    fn hangzhou_july_2020_declaration_moved_to_august_25() {
        let cal = calendar();
        // DOMAIN.md gives no Hangzhou deadline day; the 15th is the seed's assumption.
        let rule = day_of(15);
        assert_eq!(deadline(ym("2020-07"), &rule, &cal, &[]), date("2020-08-15"));

        // The order: July's normal declaration period (up to 08-15) is replaced by one ending
        // 08-25; modelled as a freeze from the start of phase 2 over the normal period.
        let order = freeze("2020-07-24T18:00:00", "2020-08-16T00:00:00", Some("2020-08-25"));
        assert_eq!(deadline(ym("2020-07"), &rule, &cal, &[order]), date("2020-08-25"));
        // June's deadline (07-15) was before the cutover, August's (09-15) after it.
        assert_eq!(deadline(ym("2020-06"), &rule, &cal, &[order]), date("2020-07-15"));
        assert_eq!(deadline(ym("2020-08"), &rule, &cal, &[order]), date("2020-09-15"));

        // Phase 2 alone (7-24 18:00 → 8-12 24:00) ends before 08-15, so the generic rule does
        // not move the deadline: an order that wants more must say so with `extend_to`.
        let phase_2 = freeze("2020-07-24T18:00:00", "2020-08-13T00:00:00", None);
        assert_eq!(
            deadline(ym("2020-07"), &rule, &cal, &[phase_2]),
            date("2020-08-15")
        );
        // Had the deadline been the 10th, phase 2 would have covered it: 17 whole days were
        // left at 7-24 18:00, given back from 08-13 (the freeze ends at midnight) → 08-29.
        assert_eq!(
            deadline(ym("2020-07"), &day_of(10), &cal, &[phase_2]),
            date("2020-08-29")
        );
    }

    #[test]
    fn extend_to_never_shortens_and_freezes_chain() {
        let cal = calendar();
        let early = freeze("2021-12-01T00:00:00", "2021-12-03T00:00:00", Some("2021-12-10"));
        assert_eq!(
            deadline(ym("2021-11"), &day_of(2), &cal, &[early]),
            date("2021-12-10")
        );
        // A freeze covering 12-10 too: the extended deadline is extended again.
        let second = freeze("2021-12-09T12:00:00", "2021-12-14T00:00:00", None);
        // 12-10: 1 whole day left at 12-09 12:00 (36 h) → resume 12-14 + 0 = 12-14 (Tuesday).
        assert_eq!(
            deadline(ym("2021-11"), &day_of(2), &cal, &[second, early]),
            date("2021-12-14")
        );
        // Two freezes covering the same deadline: the later extension wins.
        let short = freeze("2021-12-01T00:00:00", "2021-12-02T12:00:00", None);
        assert_eq!(
            deadline(ym("2021-11"), &day_of(2), &cal, &[short, early]),
            date("2021-12-10")
        );
        // A freeze that ends exactly at the start of the deadline day does not cover it.
        let ends_at_midnight = freeze("2021-12-01T00:00:00", "2021-12-02T00:00:00", None);
        assert_eq!(
            deadline(ym("2021-11"), &day_of(2), &cal, &[ends_at_midnight]),
            date("2021-12-02")
        );
        // A freeze that starts at the end of the deadline day does not cover it either.
        let starts_after = freeze("2021-12-03T00:00:00", "2021-12-04T00:00:00", None);
        assert_eq!(
            deadline(ym("2021-11"), &day_of(2), &cal, &[starts_after]),
            date("2021-12-02")
        );
    }

    #[test]
    fn invalid_rules_and_freezes_are_refused() {
        assert_eq!(
            WorkingDays::new(0),
            Err(DeadlineRuleError::WorkingDaysOutOfRange { value: 0 })
        );
        assert_eq!(
            WorkingDays::new(11),
            Err(DeadlineRuleError::WorkingDaysOutOfRange { value: 11 })
        );
        assert_eq!(
            DayOfMonth::new(32),
            Err(DeadlineRuleError::DayOutOfRange { value: 32 })
        );
        assert_eq!(
            DayOfMonth::new(0),
            Err(DeadlineRuleError::DayOutOfRange { value: 0 })
        );
        assert_eq!(
            FreezeWindow::new(at("2021-12-22T18:00:00"), at("2021-12-22T18:00:00"), None),
            Err(FreezeError::EndNotAfterStart {
                start: at("2021-12-22T18:00:00"),
                end: at("2021-12-22T18:00:00")
            })
        );
        assert_eq!(
            FreezeWindow::new(
                at("2021-12-22T18:00:00"),
                at("2021-12-31T23:00:00"),
                Some(date("2021-12-31"))
            ),
            Err(FreezeError::ExtendToInsideFreeze {
                extend_to: date("2021-12-31"),
                end: at("2021-12-31T23:00:00")
            })
        );
        assert!(
            FreezeWindow::new(
                at("2020-07-24T18:00:00"),
                at("2020-08-13T00:00:00"),
                Some(date("2020-08-13"))
            )
            .is_ok(),
            "a freeze ending at midnight gives back that whole day"
        );
    }

    #[test]
    fn serde_shapes() {
        let rules: Vec<DeadlineRule> = serde_json::from_str(
            r#"[{"kind": "last_working_days", "n": 5},
                {"kind": "day_of_following_month", "day": 15},
                {"kind": "end_of_following_month"},
                {"kind": "debit_day", "day": 20}]"#,
        )
        .unwrap();
        assert_eq!(
            rules,
            vec![
                last(5),
                day_of(15),
                DeadlineRule::EndOfFollowingMonth {},
                debit(20)
            ]
        );
        assert_eq!(
            serde_json::to_value(last(5)).unwrap(),
            serde_json::json!({"kind": "last_working_days", "n": 5})
        );
        for bad in [
            r#"{"kind": "last_working_days", "n": 0}"#,
            r#"{"kind": "day_of_following_month", "day": 32}"#,
            r#"{"kind": "debit_day"}"#,
            r#"{"kind": "end_of_following_month", "day": 3}"#,
            r#"{"kind": "tomorrow"}"#,
        ] {
            assert!(serde_json::from_str::<DeadlineRule>(bad).is_err(), "{bad}");
        }

        let window: FreezeWindow = serde_json::from_str(
            r#"{"start": "2020-07-24T18:00:00", "end": "2020-08-16T00:00:00", "extend_to": "2020-08-25"}"#,
        )
        .unwrap();
        assert_eq!(window.extend_to(), Some(date("2020-08-25")));
        assert_eq!(window.start(), at("2020-07-24T18:00:00"));
        assert_eq!(window.end(), at("2020-08-16T00:00:00"));
        let no_extend: FreezeWindow =
            serde_json::from_str(r#"{"start": "2021-12-22T18:00:00", "end": "2021-12-31T23:00:00"}"#)
                .unwrap();
        assert_eq!(no_extend, wuhan_stop());
        assert!(
            serde_json::from_str::<FreezeWindow>(
                r#"{"start": "2021-12-31T23:00:00", "end": "2021-12-22T18:00:00"}"#
            )
            .is_err()
        );
    }
}

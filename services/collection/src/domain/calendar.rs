//! The working-day calendar (工作日历) that deadlines are counted in.
//!
//! DOMAIN.md §4: Wuhan employers must finish "before the last 5 working days of the month", and
//! payments reach the fund "3-5 working days" after they are made. Chinese public holidays
//! move every year and come with make-up working days on weekends (调休上班), published by the
//! State Council each autumn, so the calendar is data (the `calendar` section of
//! `policy/seed.yaml`), never a rule in code.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use contracts::ids::YearMonth;
use serde::{Deserialize, Deserializer, Serialize};

use super::deadline::WorkingDays;

/// The fewest working days any month of a valid calendar has.
///
/// A month without holidays has at least 20 weekdays; Spring Festival and National Day months
/// still keep about 15. Requiring 10 catches a calendar where a range of dates was pasted into
/// the wrong list, and it is what makes [`Calendar::last_working_days`] total for every
/// [`WorkingDays`] count (at most [`WorkingDays::MAX`], which is 10).
pub const MIN_WORKING_DAYS_PER_MONTH: usize = WorkingDays::MAX as usize;

/// Why a list of holidays and make-up working days is not a calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{date} is listed both in `holidays` and in `extra_workdays`")]
    BothHolidayAndWorkday { date: NaiveDate },
    #[error(
        "{date} in `extra_workdays` is a {weekday}; make-up working days (调休上班) are weekend \
         days, a weekday is a working day anyway"
    )]
    ExtraWorkdayNotOnWeekend { date: NaiveDate, weekday: Weekday },
    #[error(
        "month {month} would have only {working_days} working days (at least \
         {MIN_WORKING_DAYS_PER_MONTH} expected); check `holidays`"
    )]
    TooFewWorkingDays { month: String, working_days: usize },
}

/// Weekends off, except listed make-up working days; listed holidays off.
///
/// Constructed through [`Calendar::new`] (or `Deserialize`, which calls it), so both lists are
/// consistent: no date is in both, every make-up day is a Saturday or Sunday, and every month
/// keeps at least [`MIN_WORKING_DAYS_PER_MONTH`] working days.
///
/// Holidays that fall on a weekend may be listed (the State Council notices list whole
/// ranges such as 10-01 → 10-08); it makes no difference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Calendar {
    holidays: BTreeSet<NaiveDate>,
    extra_workdays: BTreeSet<NaiveDate>,
}

/// The serialised form of a [`Calendar`], checked by [`Calendar::new`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
struct CalendarFields {
    #[serde(default)]
    holidays: BTreeSet<NaiveDate>,
    #[serde(default)]
    extra_workdays: BTreeSet<NaiveDate>,
}

impl<'de> Deserialize<'de> for Calendar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = CalendarFields::deserialize(deserializer)?;
        Calendar::new(fields.holidays, fields.extra_workdays).map_err(serde::de::Error::custom)
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The first day of the month containing `date`.
fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// Every day of the month that starts on `first` (which must be the first of a month).
fn days_of_month(first: NaiveDate) -> impl DoubleEndedIterator<Item = NaiveDate> {
    let month = first.month();
    // 31 days at most; collecting keeps the iterator double-ended.
    first
        .iter_days()
        .take(31)
        .take_while(move |d| d.month() == month)
        .collect::<Vec<_>>()
        .into_iter()
}

impl Calendar {
    /// # Errors
    ///
    /// [`CalendarError`] naming the first offending date or month.
    pub fn new(
        holidays: BTreeSet<NaiveDate>,
        extra_workdays: BTreeSet<NaiveDate>,
    ) -> Result<Self, CalendarError> {
        if let Some(&date) = holidays.intersection(&extra_workdays).next() {
            return Err(CalendarError::BothHolidayAndWorkday { date });
        }
        if let Some(&date) = extra_workdays.iter().find(|d| !is_weekend(**d)) {
            return Err(CalendarError::ExtraWorkdayNotOnWeekend {
                date,
                weekday: date.weekday(),
            });
        }
        let calendar = Self {
            holidays,
            extra_workdays,
        };
        // Only months that contain a listed holiday can fall short of working days.
        let touched: BTreeSet<NaiveDate> = calendar.holidays.iter().map(|d| first_of_month(*d)).collect();
        for first in touched {
            let working_days = days_of_month(first)
                .filter(|d| calendar.is_working_day(*d))
                .count();
            if working_days < MIN_WORKING_DAYS_PER_MONTH {
                return Err(CalendarError::TooFewWorkingDays {
                    month: first.format("%Y-%m").to_string(),
                    working_days,
                });
            }
        }
        Ok(calendar)
    }

    #[must_use]
    pub fn holidays(&self) -> &BTreeSet<NaiveDate> {
        &self.holidays
    }

    #[must_use]
    pub fn extra_workdays(&self) -> &BTreeSet<NaiveDate> {
        &self.extra_workdays
    }

    /// A make-up working day wins over everything; then a holiday is off; then weekends are
    /// off and weekdays are working days.
    #[must_use]
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.extra_workdays.contains(&date) {
            return true;
        }
        !self.holidays.contains(&date) && !is_weekend(date)
    }

    /// The first of the last `n` working days of `month`: with `n = 5` in December 2021
    /// (no holidays at the end), the last five are 12-27 … 12-31 and the answer is 12-27.
    #[must_use]
    pub fn last_working_days(&self, month: YearMonth, n: WorkingDays) -> NaiveDate {
        self.first_of_last_working_days(month.first_day(), n)
    }

    /// [`Calendar::last_working_days`] for the month starting on `first`; works on dates so
    /// that the month after 2200-12 (outside `YearMonth`) has an answer too.
    pub(crate) fn first_of_last_working_days(&self, first: NaiveDate, n: WorkingDays) -> NaiveDate {
        days_of_month(first)
            .rev()
            .filter(|d| self.is_working_day(*d))
            .nth(usize::from(n.get()) - 1)
            // Unreachable: `new` guarantees every month has at least `WorkingDays::MAX`
            // working days. The first of the month is the conservative (earliest) answer.
            .unwrap_or(first)
    }

    /// The `n`-th working day after `date` (`date` itself for 0): when a payment made on
    /// `date` has reached the fund at the latest, with `n` the policy's arrival time.
    #[must_use]
    pub fn add_working_days(&self, date: NaiveDate, n: u8) -> NaiveDate {
        let mut day = date;
        let mut left = n;
        // At least 10 working days a month, so this ends within a few weeks.
        while left > 0 {
            day = Self::next_day(day);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The first working day on or after `date`.
    pub(crate) fn working_day_on_or_after(&self, date: NaiveDate) -> NaiveDate {
        date.iter_days()
            // At least 10 working days a month, so 62 days always contain one.
            .take(62)
            .find(|d| self.is_working_day(*d))
            .unwrap_or(date)
    }

    /// `date` plus one calendar day (saturating at chrono's maximum date).
    pub(crate) fn next_day(date: NaiveDate) -> NaiveDate {
        date.checked_add_days(Days::new(1)).unwrap_or(date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_days_are_added_past_weekends_and_holidays() {
        let cal = Calendar::new(dates(&["2022-04-04", "2022-04-05"]), dates(&["2022-04-02"])).unwrap();
        let d = |s: &str| date(s);
        // Wuhan March 2022: paid on the deadline 03-24, at the fund by 03-31 at the latest.
        assert_eq!(cal.add_working_days(d("2022-03-24"), 5), d("2022-03-31"));
        assert_eq!(cal.add_working_days(d("2022-03-24"), 0), d("2022-03-24"));
        // Over the 2022 Qingming holiday, with its make-up Saturday 04-02.
        assert_eq!(cal.add_working_days(d("2022-04-01"), 1), d("2022-04-02"));
        assert_eq!(cal.add_working_days(d("2022-04-01"), 2), d("2022-04-06"));
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn dates(list: &[&str]) -> BTreeSet<NaiveDate> {
        list.iter().map(|s| date(s)).collect()
    }

    fn ym(s: &str) -> YearMonth {
        YearMonth::parse(s).unwrap()
    }

    fn n(count: u8) -> WorkingDays {
        WorkingDays::new(count).unwrap()
    }

    /// The national 2020/2021 holidays that the tests below touch (the full list is in
    /// `policy/seed.yaml`, checked in `policy.rs`).
    fn calendar() -> Calendar {
        Calendar::new(
            dates(&[
                // Spring Festival 2020, extended to 02-02 because of COVID-19.
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
                // National Day and Mid-Autumn 2020.
                "2020-10-01",
                "2020-10-02",
                "2020-10-05",
                "2020-10-06",
                "2020-10-07",
                "2020-10-08",
                // Mid-Autumn 2021.
                "2021-09-20",
                "2021-09-21",
            ]),
            dates(&[
                "2020-01-19",
                "2020-09-27",
                "2020-10-10",
                "2021-09-18",
                "2021-09-26",
            ]),
        )
        .unwrap()
    }

    #[test]
    fn working_days() {
        let cal = calendar();
        let cases: &[(&str, bool, &str)] = &[
            ("2021-12-27", true, "plain Monday"),
            ("2021-12-25", false, "plain Saturday"),
            ("2021-12-26", false, "plain Sunday"),
            ("2020-01-24", false, "holiday on a Friday"),
            ("2020-02-01", false, "holiday on a Saturday"),
            ("2020-01-19", true, "make-up Sunday"),
            ("2020-10-10", true, "make-up Saturday"),
            ("2021-09-18", true, "make-up Saturday"),
            ("2020-10-09", true, "Friday after the Golden Week"),
        ];
        for &(day, working, why) in cases {
            assert_eq!(cal.is_working_day(date(day)), working, "{day}: {why}");
        }
    }

    #[test]
    fn last_working_days_table() {
        let cal = calendar();
        let cases: &[(&str, u8, &str, &str)] = &[
            ("2021-12", 5, "2021-12-27", "no holidays: Mon 27 … Fri 31"),
            ("2021-12", 1, "2021-12-31", "the last working day itself"),
            (
                "2020-01",
                5,
                "2020-01-19",
                "Spring Festival 01-24 … 01-31 pushes the last five back to 01-19 (make-up Sunday) … 01-23",
            ),
            (
                "2020-09",
                5,
                "2020-09-25",
                "make-up Sunday 09-27 counts: 25, 27, 28, 29, 30",
            ),
            (
                "2021-09",
                5,
                "2021-09-26",
                "make-up Sunday 09-26 counts: 26, 27, 28, 29, 30",
            ),
            ("2021-02", 5, "2021-02-22", "plain end of February"),
            ("2020-10", 10, "2020-10-19", "n at its maximum"),
        ];
        for &(month, count, first, why) in cases {
            assert_eq!(
                cal.last_working_days(ym(month), n(count)),
                date(first),
                "{month}, n = {count}: {why}"
            );
        }
        // The same months without the calendar, to show the calendar is what moved them.
        let plain = Calendar::default();
        assert_eq!(plain.last_working_days(ym("2020-01"), n(5)), date("2020-01-27"));
        assert_eq!(plain.last_working_days(ym("2020-09"), n(5)), date("2020-09-24"));
    }

    #[test]
    fn a_make_up_saturday_at_the_end_of_a_month_counts() {
        // Synthetic calendar (not the real 2022 one): a make-up Saturday on 2022-04-30.
        let cal = Calendar::new(BTreeSet::new(), dates(&["2022-04-30"])).unwrap();
        assert!(cal.is_working_day(date("2022-04-30")));
        assert_eq!(cal.last_working_days(ym("2022-04"), n(1)), date("2022-04-30"));
        assert_eq!(cal.last_working_days(ym("2022-04"), n(5)), date("2022-04-26"));
        assert_eq!(
            Calendar::default().last_working_days(ym("2022-04"), n(5)),
            date("2022-04-25")
        );
    }

    #[test]
    fn working_day_on_or_after() {
        let cal = calendar();
        assert_eq!(
            cal.working_day_on_or_after(date("2020-01-24")),
            date("2020-02-03")
        );
        assert_eq!(
            cal.working_day_on_or_after(date("2020-10-10")),
            date("2020-10-10")
        );
        assert_eq!(
            cal.working_day_on_or_after(date("2021-12-25")),
            date("2021-12-27")
        );
    }

    #[test]
    fn invalid_calendars_are_refused() {
        assert_eq!(
            Calendar::new(dates(&["2021-10-09"]), dates(&["2021-10-09"])),
            Err(CalendarError::BothHolidayAndWorkday {
                date: date("2021-10-09")
            })
        );
        assert_eq!(
            Calendar::new(BTreeSet::new(), dates(&["2021-10-08"])),
            Err(CalendarError::ExtraWorkdayNotOnWeekend {
                date: date("2021-10-08"),
                weekday: Weekday::Fri
            })
        );
        let whole_month: BTreeSet<NaiveDate> = date("2021-03-01").iter_days().take(25).collect();
        assert_eq!(
            Calendar::new(whole_month, BTreeSet::new()),
            Err(CalendarError::TooFewWorkingDays {
                month: "2021-03".into(),
                working_days: 4
            })
        );
    }

    #[test]
    fn serde_goes_through_new() {
        let cal: Calendar =
            serde_json::from_str(r#"{"holidays": ["2021-10-01"], "extra_workdays": ["2021-10-09"]}"#)
                .unwrap();
        assert!(!cal.is_working_day(date("2021-10-01")));
        assert!(cal.is_working_day(date("2021-10-09")));
        let round_trip: Calendar = serde_json::from_str(&serde_json::to_string(&cal).unwrap()).unwrap();
        assert_eq!(round_trip, cal);
        assert!(
            serde_json::from_str::<Calendar>(r#"{"holidays": [], "extra_workdays": ["2021-10-08"]}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Calendar>(r#"{"holiday": []}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Calendar>("{}").unwrap(),
            Calendar::default()
        );
    }
}

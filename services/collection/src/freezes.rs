//! What the freeze orders in force do to collection's deadlines (issue 7 §4).
//!
//! Collection keeps each assessment's *plain* deadline (its policy rule, with any published
//! override) and derives the effective one from the orders the service holds, every time it
//! judges a payment or arrears, so that an order announced, extended or lifted later moves
//! deadlines that were assessed before it:
//!
//! - an order with `deadlines: extend` whose scope includes the line and the payer extends a
//!   deadline it covers by what it took away (顺延, [`crate::domain::deadline::deadline`]);
//! - an order with `deadlines: move-to` moves the declaration period it names (the month in
//!   which a month's contributions are collected) to close at the end of its window;
//! - while an open-ended order that covers a deadline is in force, the deadline is not known
//!   yet: nobody is judged in arrears against it until the thaw gives the freeze its end.
//!
//! Orders are matched on line and payer kind only: "every deadline that falls in the stop is
//! extended" (各项期限顺延) is about the line's deadlines, whichever service the stop names.
//! Assessments know a payer as `employer` or `person`; an order naming any person kind
//! (`flexible`, `retiree`, `resident`) applies to every person's deadline, which can only
//! lengthen a deadline, never shorten one.

use crate::domain::calendar::Calendar;
use crate::domain::deadline::{FreezeWindow, extend_by};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use contracts::Line;
use contracts::freeze::{DeadlineEffect, FreezeOrder, cst};

/// The payer groups assessments distinguish (`assessments.payer_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayerGroup {
    Employer,
    Person,
}

impl PayerGroup {
    pub fn from_kind(kind: &str) -> Self {
        if kind == "employer" {
            PayerGroup::Employer
        } else {
            PayerGroup::Person
        }
    }

    fn named_by(self, payer_kinds: &[String]) -> bool {
        payer_kinds.is_empty()
            || payer_kinds.iter().any(|k| match self {
                PayerGroup::Employer => k == "employer",
                PayerGroup::Person => k != "employer",
            })
    }
}

/// The freezes of one line and payer group, as of `now`.
#[derive(Debug, Clone, Default)]
pub struct DeadlineFreezes {
    /// Windows with an end (orders that ended, were lifted or have a planned end).
    windows: Vec<FreezeWindow>,
    /// Starts of open-ended orders in force.
    open_since: Vec<NaiveDateTime>,
    /// Declaration periods moved: (period `YYYY-MM`, last day to pay, order start).
    moves: Vec<(String, NaiveDate, DateTime<Utc>)>,
}

fn local(t: DateTime<chrono::FixedOffset>) -> NaiveDateTime {
    t.with_timezone(&cst()).naive_local()
}

/// The last day of a window closing at `closes` (exclusive): 08-26 00:00 gives 08-25.
fn last_day(closes: DateTime<chrono::FixedOffset>) -> NaiveDate {
    let c = local(closes);
    if c.time() == NaiveTime::MIN {
        c.date().pred_opt().unwrap_or(c.date())
    } else {
        c.date()
    }
}

impl DeadlineFreezes {
    pub fn of(orders: &[FreezeOrder], line: Line, payer: PayerGroup, now: DateTime<Utc>) -> Self {
        let mut out = DeadlineFreezes::default();
        for o in orders {
            if !(o.scope.lines.is_empty() || o.scope.lines.contains(&line))
                || !payer.named_by(&o.scope.payer_kinds)
            {
                continue;
            }
            match &o.deadlines {
                DeadlineEffect::Extend => match o.ends_at {
                    Some(end) => {
                        if let Ok(w) = FreezeWindow::new(local(o.starts_at), local(end), None) {
                            out.windows.push(w);
                        }
                    }
                    None if o.starts_at <= now => out.open_since.push(local(o.starts_at)),
                    // Announced, open-ended, not started: nothing is known of its length yet.
                    None => {}
                },
                // A declaration period (申报期) is the employers': persons' deadlines are
                // moved only by `extend` orders (Hangzhou 2020: flexible workers' July stays
                // 08-15 while employers declare until 08-25).
                DeadlineEffect::MoveTo { .. } if payer == PayerGroup::Person => {}
                DeadlineEffect::MoveTo { period, closes, .. } => {
                    out.moves
                        .push((period.clone(), last_day(*closes), o.starts_at.with_timezone(&Utc)));
                }
                DeadlineEffect::None => {}
            }
        }
        out
    }

    /// The effective deadline of a plain deadline collected in `collection_month` (its first
    /// day): moved by a `move-to` of that period (the order that starts last wins), then
    /// extended by the windows that cover it.
    pub fn deadline(&self, plain: NaiveDate, collection_month: NaiveDate, calendar: &Calendar) -> NaiveDate {
        let period = collection_month.format("%Y-%m").to_string();
        let moved = self
            .moves
            .iter()
            .filter(|(p, _, _)| *p == period)
            .max_by_key(|(_, _, start)| *start)
            .map_or(plain, |(_, last, _)| (*last).max(plain));
        extend_by(moved, calendar, &self.windows)
    }

    /// No order moves this payer's deadlines: the plain deadline is the effective one.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.open_since.is_empty() && self.moves.is_empty()
    }

    /// Whether an open-ended freeze in force covers `deadline` (it started before the end of
    /// the deadline day): the deadline is extended until a thaw that has not come yet.
    pub fn held(&self, deadline: NaiveDate) -> bool {
        let end_of_day = Calendar::next_day(deadline).and_time(NaiveTime::MIN);
        self.open_since.iter().any(|s| *s < end_of_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::freeze::{FreezeMode, FreezeScope};

    /// New Year 2022 (01-01 to 01-03), the holiday the Wuhan figures cross.
    fn cal() -> Calendar {
        let holidays = ["2022-01-01", "2022-01-02", "2022-01-03"]
            .iter()
            .map(|s| d(s))
            .collect();
        Calendar::new(holidays, Default::default()).expect("a calendar")
    }

    fn t(s: &str) -> DateTime<chrono::FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("a time")
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("a date")
    }

    fn order(
        id: &str,
        starts: &str,
        ends: Option<&str>,
        payer_kinds: &[&str],
        deadlines: DeadlineEffect,
    ) -> FreezeOrder {
        FreezeOrder {
            id: id.into(),
            scope: FreezeScope {
                lines: vec![Line::Medical],
                payer_kinds: payer_kinds.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            mode: FreezeMode::Suspended,
            starts_at: t(starts),
            ends_at: ends.map(t),
            reason: "test".into(),
            announcement: String::new(),
            deadlines,
            redirect_to: None,
        }
    }

    #[test]
    fn wuhan_settlement_stop_extends_the_december_deadline_to_01_04() {
        // Plain deadline 2021-12-26 (before the last 5 working days of December 2021); the
        // stop 12-22 18:00 → 12-31 23:00 leaves 4 whole days, given back from 01-01: 01-04.
        let orders = [order(
            "stop",
            "2021-12-22T18:00:00+08:00",
            Some("2021-12-31T23:00:00+08:00"),
            &[],
            DeadlineEffect::Extend,
        )];
        let f = DeadlineFreezes::of(&orders, Line::Medical, PayerGroup::Person, Utc::now());
        assert_eq!(
            f.deadline(d("2021-12-26"), d("2021-12-01"), &cal()),
            d("2022-01-04")
        );
        assert!(!f.held(d("2021-12-26")));
        // The social line's deadlines are not the medical order's business.
        let social = DeadlineFreezes::of(&orders, Line::Social, PayerGroup::Person, Utc::now());
        assert_eq!(
            social.deadline(d("2021-12-26"), d("2021-12-01"), &cal()),
            d("2021-12-26")
        );
    }

    #[test]
    fn open_ended_orders_hold_until_given_an_end() {
        let open = [order(
            "o",
            "2021-12-15T17:30:00+08:00",
            None,
            &["employer", "flexible"],
            DeadlineEffect::Extend,
        )];
        let f = DeadlineFreezes::of(&open, Line::Medical, PayerGroup::Employer, Utc::now());
        assert!(f.held(d("2021-12-26")));
        assert!(
            f.held(d("2021-12-15")),
            "a freeze starting on the deadline day takes part of it"
        );
        assert!(!f.held(d("2021-12-14")));
        // Once ended (2022-01-10 00:00): 11 whole days from 12-15 17:30 to the end of 12-26,
        // given back from 01-10: 01-20.
        let ended = [order(
            "o",
            "2021-12-15T17:30:00+08:00",
            Some("2022-01-10T00:00:00+08:00"),
            &["employer", "flexible"],
            DeadlineEffect::Extend,
        )];
        let f = DeadlineFreezes::of(&ended, Line::Medical, PayerGroup::Employer, Utc::now());
        assert!(!f.held(d("2021-12-26")));
        assert_eq!(
            f.deadline(d("2021-12-26"), d("2021-12-01"), &cal()),
            d("2022-01-20")
        );
        // Applied to the plain deadline, the result does not depend on how often it is asked.
        assert_eq!(
            f.deadline(d("2021-12-26"), d("2021-12-01"), &cal()),
            d("2022-01-20")
        );
    }

    #[test]
    fn payer_kinds_choose_the_deadlines() {
        let resident = [order(
            "r",
            "2021-12-14T17:30:00+08:00",
            None,
            &["resident"],
            DeadlineEffect::Extend,
        )];
        let employer = DeadlineFreezes::of(&resident, Line::Medical, PayerGroup::Employer, Utc::now());
        assert!(!employer.held(d("2021-12-26")));
        let person = DeadlineFreezes::of(&resident, Line::Medical, PayerGroup::Person, Utc::now());
        assert!(person.held(d("2021-12-26")));
    }

    #[test]
    fn hangzhou_moves_julys_declaration_to_08_25() {
        let orders = [order(
            "p2",
            "2020-07-24T18:00:00+08:00",
            Some("2020-08-01T00:00:00+08:00"),
            &[],
            DeadlineEffect::MoveTo {
                period: "2020-07".into(),
                opens: t("2020-08-01T00:00:00+08:00"),
                closes: t("2020-08-26T00:00:00+08:00"),
            },
        )];
        let f = DeadlineFreezes::of(&orders, Line::Medical, PayerGroup::Employer, Utc::now());
        assert_eq!(
            f.deadline(d("2020-07-15"), d("2020-07-01"), &cal()),
            d("2020-08-25")
        );
        // Another period is not moved.
        assert_eq!(
            f.deadline(d("2020-08-15"), d("2020-08-01"), &cal()),
            d("2020-08-15")
        );
    }
}

//! Retirement 退休审核 and the pension, as pure rules (issue 10 §5): the legal age from the ID
//! number's birth date and gender digit, the contribution-years test, the monthly pension
//! from the policy's figures, and the month the pension starts (the in-time rule, Wuhan's
//! back-pay after the stop, Hangzhou's July 2020 retirees). The figures are policy data
//! (migration V6); this file holds only the arithmetic and the order the rules are tried in.

use super::money::fen;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use contracts::ids::YearMonth;
use rust_decimal::Decimal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    /// The 17th character of an 18-character ID number: odd for a man, even for a woman.
    pub fn of_id_number(id: &str) -> Option<Gender> {
        let d = id.as_bytes().get(16).filter(|b| b.is_ascii_digit())?;
        Some(if (d - b'0') % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }
}

/// The day a person born on `birth` turns `age` (one born on 29 February turns it on
/// 1 March of a common year).
pub fn reaches_age_on(birth: NaiveDate, age: i32) -> NaiveDate {
    let year = birth.year() + age;
    birth
        .with_year(year)
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
        .expect("a valid date")
}

pub fn month_of(d: NaiveDate) -> YearMonth {
    YearMonth::new(d.year(), d.month()).expect("a date's month is valid")
}

/// `m` plus `n` months.
pub fn add_months(m: YearMonth, n: u32) -> YearMonth {
    (0..n).fold(m, |m, _| m.next().expect("months in range"))
}

/// The pension formula's figures (a `pension_policies` row).
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    pub average_wage: Decimal,
    pub contribution_index: Decimal,
    pub rate_per_year: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pension {
    pub basic: Decimal,
    pub account: Decimal,
    pub monthly: Decimal,
}

/// 基础养老金 = wage × (1 + index) / 2 × (months / 12) × rate, and 个人账户养老金 =
/// balance / divisor; each rounded half up to the fen, the pension their sum.
pub fn pension(f: &Formula, months: i32, balance: Decimal, divisor: i32) -> Pension {
    let years = Decimal::from(months) / Decimal::from(12);
    let basic =
        fen(f.average_wage * (Decimal::ONE + f.contribution_index) / Decimal::TWO * years * f.rate_per_year);
    let account = fen(balance / Decimal::from(divisor.max(1)));
    Pension {
        basic,
        account,
        monthly: basic + account,
    }
}

/// Why a retirement is refused on the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnderAge { reaches: NaiveDate },
    InsufficientYears { months: i32, minimum: i32 },
    NotEnrolled,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnderAge { .. } => "under-age",
            Refusal::InsufficientYears { .. } => "insufficient-contribution-years",
            Refusal::NotEnrolled => "not-enrolled",
        }
    }

    pub fn reason(&self, age: i32) -> String {
        match self {
            Refusal::UnderAge { reaches } => format!(
                "未达到法定退休年龄：{age}周岁于{reaches}届满 (the legal retirement age {age} is reached on {reaches})"
            ),
            Refusal::InsufficientYears { months, minimum } => format!(
                "累计缴费年限不足：{}年{}个月，最低{}年 ({months} contribution months, at least {minimum} required)",
                months / 12,
                months % 12,
                minimum / 12
            ),
            Refusal::NotEnrolled => "未参加基本养老保险 (not enrolled in pension insurance)".to_owned(),
        }
    }
}

/// The age test: the age is reached by the end of the month of the approval.
pub fn judge(
    reaches: NaiveDate,
    approved_on: NaiveDate,
    enrolled: bool,
    months: i32,
    minimum: i32,
) -> Result<(), Refusal> {
    if !enrolled {
        return Err(Refusal::NotEnrolled);
    }
    if month_of(reaches) > month_of(approved_on) {
        return Err(Refusal::UnderAge { reaches });
    }
    if months < minimum {
        return Err(Refusal::InsufficientYears { months, minimum });
    }
    Ok(())
}

/// A pension start rule (a `pension_start_rules` row), with the freeze order's end resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum StartRule {
    /// Persons who reached the age before the restart, whose in-time window was still open
    /// when the stop began (`starts_at`; over at `ended_at`, by its end or its lift, `None`
    /// while in force), and who apply within `window_months` of its end are paid from the
    /// month after reaching the age.
    FreezeWindow {
        id: String,
        starts_at: DateTime<Utc>,
        ended_at: Option<DateTime<Utc>>,
        window_months: u32,
    },
    /// Persons retiring in `retirement_month` who applied at or after `apply_before` are
    /// paid from the month after approval.
    ApplyBy {
        id: String,
        retirement_month: YearMonth,
        apply_before: DateTime<Utc>,
    },
}

/// The first month paid and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub from: YearMonth,
    pub rule: String,
}

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

fn start_of(m: YearMonth) -> DateTime<Utc> {
    m.first_day()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_local_timezone(cst())
        .single()
        .expect("CST has no gaps")
        .with_timezone(&Utc)
}

/// From when the pension is paid. Normally from the month after the age is reached (back
/// months paid in the next run) when the application is in time (before the end of that
/// month plus `grace_months`), else from the month after approval; the rules of `rules`
/// change that: `ApplyBy` first (a restriction), then `FreezeWindow` (an extension).
pub fn start(
    reaches: NaiveDate,
    applied_at: DateTime<Utc>,
    approved_at: DateTime<Utc>,
    grace_months: u32,
    rules: &[StartRule],
) -> Start {
    let retirement = month_of(reaches);
    let due = add_months(retirement, 1);
    let approved = month_of(approved_at.with_timezone(&cst()).date_naive());
    let after_approval = add_months(approved, 1).max(due);
    let in_time_until = start_of(add_months(due, 1 + grace_months));
    for r in rules {
        if let StartRule::ApplyBy {
            id,
            retirement_month,
            apply_before,
        } = r
            && *retirement_month == retirement
            && applied_at >= *apply_before
        {
            return Start {
                from: after_approval,
                rule: id.clone(),
            };
        }
    }
    if applied_at < in_time_until {
        return Start {
            from: due,
            rule: "in-time".into(),
        };
    }
    for r in rules {
        if let StartRule::FreezeWindow {
            id,
            starts_at,
            ended_at: Some(ended),
            window_months,
        } = r
        {
            let window_end = ended
                .with_timezone(&cst())
                .checked_add_months(chrono::Months::new(*window_months))
                .map_or(*ended, |t| t.with_timezone(&Utc));
            // Missed in the stop: the age was reached before the restart, and the window to
            // apply had not closed when the stop began.
            let reached_before_restart = reaches <= ended.with_timezone(&cst()).date_naive();
            if reached_before_restart && in_time_until > *starts_at && applied_at <= window_end {
                return Start {
                    from: due,
                    rule: id.clone(),
                };
            }
        }
    }
    Start {
        from: after_approval,
        rule: "late-application".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn m(s: &str) -> YearMonth {
        YearMonth::parse(s).unwrap()
    }

    fn wuhan(lifted: Option<&str>) -> StartRule {
        StartRule::FreezeWindow {
            id: "wuhan-2021-missed-during-stop".into(),
            starts_at: t("2021-12-15T17:30:00+08:00"),
            ended_at: lifted.map(t),
            window_months: 3,
        }
    }

    fn hangzhou() -> StartRule {
        StartRule::ApplyBy {
            id: "hangzhou-2020-july-retirees".into(),
            retirement_month: m("2020-07"),
            apply_before: t("2020-07-17T00:00:00+08:00"),
        }
    }

    #[test]
    fn gender_and_age_come_from_the_id_number() {
        assert_eq!(Gender::of_id_number("420102196112200011"), Some(Gender::Male));
        assert_eq!(Gender::of_id_number("420102197107100022"), Some(Gender::Female));
        assert_eq!(Gender::of_id_number("42010219711"), None);
        assert_eq!(reaches_age_on(d("1961-12-20"), 60), d("2021-12-20"));
        assert_eq!(reaches_age_on(d("1964-02-29"), 60), d("2024-02-29"));
        assert_eq!(reaches_age_on(d("1960-02-29"), 55), d("2015-03-01"));
    }

    #[test]
    fn the_pension_is_the_basic_part_plus_the_account_part_each_to_the_fen() {
        let f = Formula {
            average_wage: "7000.00".parse().unwrap(),
            contribution_index: Decimal::ONE,
            rate_per_year: "0.01".parse().unwrap(),
        };
        // 7000 × 2 / 2 × 191/12 × 1 % = 1114.1666… → 1114.17; 60000 / 139 = 431.654… → 431.65.
        let p = pension(&f, 191, "60000.00".parse().unwrap(), 139);
        assert_eq!(
            (p.basic.to_string(), p.account.to_string(), p.monthly.to_string()),
            ("1114.17".into(), "431.65".into(), "1545.82".into())
        );
        let p = pension(&f, 180, Decimal::ZERO, 195);
        assert_eq!(p.monthly.to_string(), "1050.00");
    }

    #[test]
    fn age_years_and_enrollment_are_judged_in_that_order() {
        let reaches = d("2024-03-15");
        assert_eq!(judge(reaches, d("2024-03-01"), true, 200, 180), Ok(()));
        assert_eq!(
            judge(reaches, d("2024-02-29"), true, 200, 180),
            Err(Refusal::UnderAge { reaches })
        );
        let r = judge(reaches, d("2024-03-20"), true, 150, 180).unwrap_err();
        assert_eq!(r.code(), "insufficient-contribution-years");
        assert!(r.reason(60).contains("12年6个月"), "{}", r.reason(60));
        assert_eq!(
            judge(reaches, d("2024-03-20"), false, 300, 180),
            Err(Refusal::NotEnrolled)
        );
    }

    #[test]
    fn an_application_in_time_is_paid_from_the_month_after_the_age_and_a_late_one_after_approval() {
        let reaches = d("2024-03-15");
        let s = start(
            reaches,
            t("2024-04-10T09:00:00+08:00"),
            t("2024-06-03T09:00:00+08:00"),
            0,
            &[],
        );
        assert_eq!((s.from, s.rule.as_str()), (m("2024-04"), "in-time"));
        let s = start(
            reaches,
            t("2024-05-02T09:00:00+08:00"),
            t("2024-06-03T09:00:00+08:00"),
            0,
            &[],
        );
        assert_eq!((s.from, s.rule.as_str()), (m("2024-07"), "late-application"));
    }

    #[test]
    fn wuhan_a_retirement_missed_in_the_stop_and_filed_within_3_months_is_back_paid() {
        // Turned 60 on 2021-12-20, four days after the social business stopped: the window to
        // apply (to the end of January 2022) fell in the stop. Restart (the lift) 2022-01-20.
        let reaches = d("2021-12-20");
        let lift = Some("2022-01-20T09:00:00+08:00");
        let within = start(
            reaches,
            t("2022-04-20T08:00:00+08:00"),
            t("2022-04-22T10:00:00+08:00"),
            0,
            &[wuhan(lift)],
        );
        assert_eq!(
            (within.from, within.rule.as_str()),
            (m("2022-01"), "wuhan-2021-missed-during-stop")
        );
        // After the three months: late, from the month after approval.
        let after = start(
            reaches,
            t("2022-04-20T10:00:00+08:00"),
            t("2022-04-22T10:00:00+08:00"),
            0,
            &[wuhan(lift)],
        );
        assert_eq!(
            (after.from, after.rule.as_str()),
            (m("2022-05"), "late-application")
        );
        // Still stopped (no end, not lifted): the rule has no window yet.
        let stopped = start(
            reaches,
            t("2022-03-01T10:00:00+08:00"),
            t("2022-03-01T11:00:00+08:00"),
            0,
            &[wuhan(None)],
        );
        assert_eq!(stopped.rule, "late-application");
        // A window that closed before the stop is not reopened by it.
        let earlier = start(
            d("2021-10-05"),
            t("2022-02-10T10:00:00+08:00"),
            t("2022-02-11T10:00:00+08:00"),
            0,
            &[wuhan(lift)],
        );
        assert_eq!(earlier.rule, "late-application");
        // Reaching the age after the restart is not business missed in the stop.
        let later = start(
            d("2022-02-10"),
            t("2022-04-15T10:00:00+08:00"),
            t("2022-04-16T10:00:00+08:00"),
            0,
            &[wuhan(lift)],
        );
        assert_eq!(
            (later.from, later.rule.as_str()),
            (m("2022-05"), "late-application")
        );
    }

    #[test]
    fn hangzhou_july_2020_retirees_who_had_not_applied_by_the_17th_are_paid_after_approval() {
        let reaches = d("2020-07-08");
        let before = start(
            reaches,
            t("2020-07-16T16:00:00+08:00"),
            t("2020-08-13T10:00:00+08:00"),
            0,
            &[hangzhou()],
        );
        assert_eq!((before.from, before.rule.as_str()), (m("2020-08"), "in-time"));
        let after = start(
            reaches,
            t("2020-07-17T09:00:00+08:00"),
            t("2020-08-13T10:00:00+08:00"),
            0,
            &[hangzhou()],
        );
        assert_eq!(
            (after.from, after.rule.as_str()),
            (m("2020-09"), "hangzhou-2020-july-retirees")
        );
        // June retirees are not touched by the July rule.
        let june = start(
            d("2020-06-20"),
            t("2020-07-20T09:00:00+08:00"),
            t("2020-08-13T10:00:00+08:00"),
            0,
            &[hangzhou()],
        );
        assert_eq!((june.from, june.rule.as_str()), (m("2020-07"), "in-time"));
    }
}

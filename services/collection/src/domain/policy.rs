//! Policy tables: the published figures per region, insurance type and period, as data.
//!
//! DOMAIN.md §4: "The floor and cap are published figures, not always 60%/300% of the current
//! standard … So policy tables store floor and cap amounts per (region, insurance type,
//! period) with effective dates." Rates are data too, and so is the deadline rule (Jinan
//! changed its deadline from one date on, which is two rows with different periods). The
//! figures the service starts with are in `policy/seed.yaml`.

use std::fmt;

use contracts::InsuranceType;
use contracts::ids::YearMonth;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::assessment::Category;
use super::calendar::Calendar;
use super::deadline::{DeadlineMonth, DeadlineRule, FreezeWindow, deadline_in};

pub use contracts::ids::{RegionCode, RegionCodeError};

/// An inclusive range of months; `to: None` is open-ended (in force until a later row
/// replaces it, which must then close this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub from: YearMonth,
    pub to: Option<YearMonth>,
}

impl Period {
    #[must_use]
    pub fn contains(self, month: YearMonth) -> bool {
        self.from <= month && self.to.is_none_or(|to| month <= to)
    }

    #[must_use]
    pub fn overlaps(self, other: Period) -> bool {
        self.to.is_none_or(|to| other.from <= to) && other.to.is_none_or(|to| self.from <= to)
    }
}

impl fmt::Display for Period {
    /// `2021-01..2021-12`, or `2021-01..` when open-ended.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to {
            Some(to) => write!(f, "{}..{to}", self.from),
            None => write!(f, "{}..", self.from),
        }
    }
}

/// One published policy row: the figures for one region and insurance type over a period.
///
/// Amounts (`standard_base`, `floor`, `cap`, `retiree_monthly_premium`) are yuan with at most
/// two decimals; rates are fractions (`0.08` for 8%), never percentages. All decimals are
/// written as strings in the seed so that no parser goes through a float. The fields are
/// public because a row is plain data; [`PolicyTable::new`] is where rows are checked, and
/// the rest of the domain only sees rows that came out of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct PolicyRule {
    pub region: RegionCode,
    pub insurance_type: InsuranceType,
    /// First month in force.
    pub effective_from: YearMonth,
    /// Last month in force (inclusive); absent while no successor is published.
    #[serde(default)]
    pub effective_to: Option<YearMonth>,
    /// The provincial standard base (社平工资 / 12): flexible workers' default base.
    pub standard_base: Decimal,
    /// Lowest base (缴费基数下限); published, not always 60% of `standard_base`.
    pub floor: Decimal,
    /// Highest base (缴费基数上限); published, usually 300% of `standard_base`.
    pub cap: Decimal,
    /// Employer's share of an employee's base.
    pub employer_rate: Decimal,
    /// Employee's own share, withheld by the employer.
    pub employee_rate: Decimal,
    /// Rate a flexible worker (or resident) pays alone on their base.
    pub flexible_rate: Decimal,
    /// Fixed yuan per month a retiree pays when `retiree_pays_rate` is false (Wuhan
    /// large-amount medical: 7).
    pub retiree_monthly_premium: Decimal,
    /// Whether retirees still pay `flexible_rate` on the standard base for this type, instead
    /// of the fixed premium (Wuhan medical: no, once the minimum contribution years are met).
    pub retiree_pays_rate: bool,
    /// When the contribution is due, for everyone but flexible workers with their own rule.
    pub deadline: DeadlineRule,
    /// The deadline of flexible workers who signed a bank batch-debit agreement (Wuhan: the
    /// debit starts on the 20th, funds must be on the card by then); everyone else, flexible
    /// workers without an agreement included, has `deadline`. Absent: no batch debit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flexible_deadline: Option<DeadlineRule>,
    /// Which month the deadline rules are applied to: M itself (Wuhan, Jinan) or M+1
    /// (Hangzhou). Absent in rows written before the field existed, which were all M+1.
    #[serde(default)]
    pub deadline_month: DeadlineMonth,
    /// Working days a payment takes to reach the fund after it is made (Wuhan: 3-5, so 5):
    /// arrears are judged by when a payment was made, so a month is checked only once this
    /// many working days have passed after its deadline.
    #[serde(default)]
    pub arrival_working_days: u8,
    /// From which day arrears affect benefits at all (Wuhan: 2022-04-01, "4月1日起"); absent:
    /// from the 1st of the month after the missed deadline, with no start date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefits_affected_from: Option<chrono::NaiveDate>,
    /// What a resident pays per year under this row (resident medical 城乡居民医疗: a fixed
    /// amount per person and year, not a monthly rate): charged once per person and calendar
    /// year, in the first month of the year the person is covered. Absent: residents pay
    /// `flexible_rate` monthly on the standard base, like flexible workers (resident pension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly_premium: Option<Decimal>,
    /// When the yearly premium is collected (集中缴费期): present exactly when
    /// `yearly_premium` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_period: Option<CollectionPeriod>,
    /// The month from which this row's base figures (standard base, floor, cap) are in use,
    /// when they were published after the period began (Hangzhou 2020: the 2020 base from
    /// July 2020). Until a month on or after it is assessed, the months of the period are
    /// assessed on the figures of the row before it ([`PolicyRule::provisional`]); then they
    /// are settled up or refunded (多退少补) as adjustments. Rates and deadlines are this
    /// row's own throughout. Absent: in use from `effective_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use_from: Option<YearMonth>,
}

/// A day of the year without its year (`"09-01"`), for periods that recur every year. The
/// 29th of February is allowed and falls on the 28th in other years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthDay {
    month: u32,
    day: u32,
}

impl MonthDay {
    /// # Errors
    ///
    /// A message naming the problem unless `s` is `MM-DD` with a day that exists in some year.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a day of the year written MM-DD (e.g. 09-01)");
        let (m, d) = s.split_once('-').ok_or_else(bad)?;
        if m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let (month, day): (u32, u32) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        // 2000 is a leap year: every day that exists in some year exists in it.
        chrono::NaiveDate::from_ymd_opt(2000, month, day).ok_or_else(bad)?;
        Ok(Self { month, day })
    }

    /// This day in `year` (the 29th of February on the 28th outside leap years).
    #[must_use]
    pub fn in_year(self, year: i32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(year, self.month, self.day)
            .or_else(|| chrono::NaiveDate::from_ymd_opt(year, self.month, self.day - 1))
            .expect("a MonthDay exists in every year, the 29th of February as the 28th")
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

impl Serialize for MonthDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MonthDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        MonthDay::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The collection period of a yearly premium (集中缴费期): it opens on `opens` in the year
/// before the coverage year and closes on the first `closes` day from then on (`09-01` …
/// `12-31` is September to December before the year; `09-01` … `02-28` runs into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct CollectionPeriod {
    pub opens: MonthDay,
    pub closes: MonthDay,
}

impl CollectionPeriod {
    /// The first and last day of the period for coverage year `year`.
    #[must_use]
    pub fn for_year(self, year: i32) -> (chrono::NaiveDate, chrono::NaiveDate) {
        let opens = self.opens.in_year(year - 1);
        let closes = if self.closes >= self.opens {
            self.closes.in_year(year - 1)
        } else {
            self.closes.in_year(year)
        };
        (opens, closes)
    }
}

impl PolicyRule {
    #[must_use]
    pub fn period(&self) -> Period {
        Period {
            from: self.effective_from,
            to: self.effective_to,
        }
    }

    /// Whether this row is in force for `month`.
    #[must_use]
    pub fn contains(&self, month: YearMonth) -> bool {
        self.period().contains(month)
    }

    /// The deadline rule that applies to a person of `category`: the batch-debit day only
    /// for a flexible worker with a debit agreement; retirees, residents and flexible workers
    /// paying by themselves have `deadline`.
    #[must_use]
    pub fn deadline_for(&self, category: Category, debit_agreement: bool) -> &DeadlineRule {
        match (category, debit_agreement, &self.flexible_deadline) {
            (Category::Flexible, true, Some(rule)) => rule,
            _ => &self.deadline,
        }
    }

    /// The date by which `month` must be paid by a person of `category`, in the collection
    /// month this row chooses, extended by `freezes`.
    #[must_use]
    pub fn due_date(
        &self,
        month: YearMonth,
        category: Category,
        debit_agreement: bool,
        calendar: &Calendar,
        freezes: &[FreezeWindow],
    ) -> chrono::NaiveDate {
        deadline_in(
            month,
            self.deadline_month,
            self.deadline_for(category, debit_agreement),
            calendar,
            freezes,
        )
    }

    /// The date by which a resident's yearly premium assessed in `month` must be paid: the
    /// close of the collection period for a premium of the year's first month (the person was
    /// covered from January, so enrolled in the period before the year); for a later month
    /// (enrolled during the year) the row's `deadline` for that month, as any person paying
    /// alone. Without a collection period, `deadline` throughout.
    #[must_use]
    pub fn premium_due_date(&self, month: YearMonth, calendar: &Calendar) -> chrono::NaiveDate {
        match self.collection_period {
            Some(period) if month.month() == 1 => period.for_year(month.year()).1,
            _ => self.due_date(month, Category::Resident, false, calendar, &[]),
        }
    }

    /// This row as it is applied before its figures are in use (see `in_use_from`): with the
    /// standard base, floor and cap of `preceding`, the row in force before its period, and
    /// everything else its own. A row without `in_use_from`, or without a preceding row, is
    /// applied as it is.
    #[must_use]
    pub fn provisional(&self, preceding: Option<&PolicyRule>) -> PolicyRule {
        match (self.in_use_from, preceding) {
            (Some(_), Some(p)) => PolicyRule {
                standard_base: p.standard_base,
                floor: p.floor,
                cap: p.cap,
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    fn invalid(&self, field: &'static str, problem: impl Into<String>) -> PolicyError {
        PolicyError::InvalidField {
            region: self.region.clone(),
            insurance_type: self.insurance_type,
            period: self.period(),
            field,
            problem: problem.into(),
        }
    }

    /// Checks what a published row always satisfies, naming the first field that does not.
    fn validate(&self) -> Result<(), PolicyError> {
        if let Some(to) = self.effective_to
            && to < self.effective_from
        {
            return Err(self.invalid(
                "effective_to",
                format!("{to} is before effective_from {}", self.effective_from),
            ));
        }
        let amounts = [
            ("standard_base", self.standard_base),
            ("floor", self.floor),
            ("cap", self.cap),
            ("retiree_monthly_premium", self.retiree_monthly_premium),
        ];
        for (field, value) in amounts {
            if value.is_sign_negative() && !value.is_zero() {
                return Err(self.invalid(field, format!("{value} is negative")));
            }
            if value.normalize().scale() > 2 {
                return Err(self.invalid(
                    field,
                    format!("{value} has more than 2 decimals; amounts are yuan with fen"),
                ));
            }
        }
        if let Some(premium) = self.yearly_premium {
            if premium.is_sign_negative() && !premium.is_zero() {
                return Err(self.invalid("yearly_premium", format!("{premium} is negative")));
            }
            if premium.normalize().scale() > 2 {
                return Err(self.invalid(
                    "yearly_premium",
                    format!("{premium} has more than 2 decimals; amounts are yuan with fen"),
                ));
            }
        }
        match (self.yearly_premium, self.collection_period) {
            (Some(_), None) => {
                return Err(self.invalid(
                    "collection_period",
                    "is required with a yearly premium (when it is collected)",
                ));
            }
            (None, Some(_)) => {
                return Err(self.invalid("yearly_premium", "is required with a collection period"));
            }
            _ => {}
        }
        if self.insurance_type == InsuranceType::ResidentMedical && self.yearly_premium.is_none() {
            return Err(self.invalid(
                "yearly_premium",
                "is required for resident medical: a fixed amount per person and year, not a monthly rate",
            ));
        }
        if let Some(from) = self.in_use_from
            && (from <= self.effective_from || !self.contains(from))
        {
            return Err(self.invalid(
                "in_use_from",
                format!(
                    "{from} is not a month of the period {} after its first",
                    self.period()
                ),
            ));
        }
        if self.arrival_working_days > 10 {
            return Err(self.invalid(
                "arrival_working_days",
                format!("{} is more than 10 working days", self.arrival_working_days),
            ));
        }
        if self.standard_base.is_zero() {
            return Err(self.invalid("standard_base", "is zero"));
        }
        if self.floor > self.cap {
            return Err(self.invalid("floor", format!("{} is above cap {}", self.floor, self.cap)));
        }
        let rates = [
            ("employer_rate", self.employer_rate),
            ("employee_rate", self.employee_rate),
            ("flexible_rate", self.flexible_rate),
        ];
        for (field, value) in rates {
            if value < Decimal::ZERO || value > Decimal::ONE {
                return Err(self.invalid(
                    field,
                    format!("{value} is not a fraction between 0 and 1 (write 8% as 0.08)"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a set of policy rows is not a usable table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy rule {region} {insurance_type} {period}: `{field}` {problem}")]
    InvalidField {
        region: RegionCode,
        insurance_type: InsuranceType,
        period: Period,
        field: &'static str,
        problem: String,
    },
    #[error(
        "policy rules for {region} {insurance_type} overlap: {first} and {second}; close the \
         older one with effective_to"
    )]
    Overlap {
        region: RegionCode,
        insurance_type: InsuranceType,
        first: Period,
        second: Period,
    },
}

/// All policy rows, checked: every row is valid and, for one region and insurance type, no
/// two periods share a month, so [`PolicyTable::rule_for`] has at most one answer.
///
/// Deserialises from a plain list of rows (through [`PolicyTable::new`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyTable {
    rules: Vec<PolicyRule>,
}

impl PolicyTable {
    /// # Errors
    ///
    /// [`PolicyError::InvalidField`] for the first row with a bad field,
    /// [`PolicyError::Overlap`] for the first pair (in input order) of rows for the same
    /// region and type whose periods overlap.
    pub fn new(rules: Vec<PolicyRule>) -> Result<Self, PolicyError> {
        for rule in &rules {
            rule.validate()?;
        }
        // Quadratic, but tables have tens of rows and this reports the pair in input order.
        for (i, first) in rules.iter().enumerate() {
            for second in &rules[i + 1..] {
                if first.region == second.region
                    && first.insurance_type == second.insurance_type
                    && first.period().overlaps(second.period())
                {
                    return Err(PolicyError::Overlap {
                        region: first.region.clone(),
                        insurance_type: first.insurance_type,
                        first: first.period(),
                        second: second.period(),
                    });
                }
            }
        }
        Ok(Self { rules })
    }

    /// The row in force for `region`, `insurance_type` and `month`, if one is published.
    #[must_use]
    pub fn rule_for(
        &self,
        region: &RegionCode,
        insurance_type: InsuranceType,
        month: YearMonth,
    ) -> Option<&PolicyRule> {
        self.rules
            .iter()
            .find(|r| &r.region == region && r.insurance_type == insurance_type && r.contains(month))
    }

    #[must_use]
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }
}

/// The row of `rule`'s region and type that precedes it: the latest-starting one of `rules`
/// that starts before it (whose figures `rule` is applied with until it is in use).
#[must_use]
pub fn preceding<'a>(
    rules: impl IntoIterator<Item = &'a PolicyRule>,
    rule: &PolicyRule,
) -> Option<&'a PolicyRule> {
    rules
        .into_iter()
        .filter(|r| {
            r.region == rule.region
                && r.insurance_type == rule.insurance_type
                && r.effective_from < rule.effective_from
        })
        .max_by_key(|r| r.effective_from)
}

impl Serialize for PolicyTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.rules.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PolicyTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rules = Vec::<PolicyRule>::deserialize(deserializer)?;
        PolicyTable::new(rules).map_err(serde::de::Error::custom)
    }
}

/// What `policy/seed.yaml` holds: the working-day calendar and the policy rows.
///
/// Plain serde, so the service may load it with any YAML (or JSON) deserialiser; loading
/// goes through [`Calendar::new`] and [`PolicyTable::new`], so a seed that loads is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct PolicySeed {
    pub calendar: Calendar,
    pub rules: PolicyTable,
    /// Published moves of one month's declaration and payment window.
    #[serde(default)]
    pub deadline_overrides: Vec<DeadlineOverride>,
}

/// Who pays an assessment: an employer for its staff, or a person alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayerKind {
    Employer,
    Person,
}

impl PayerKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PayerKind::Employer => "employer",
            PayerKind::Person => "person",
        }
    }
}

/// A published move of one month's declaration window for one kind of payer: the deadline of
/// `month` becomes `closes` whatever the rule says (Hangzhou: July 2020's declaration for
/// employer payers moved to 08-01 … 08-25 because of the cutover). `opens` is kept for
/// statements and notifications; payments before it are not refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct DeadlineOverride {
    pub region: RegionCode,
    pub month: YearMonth,
    pub payer_kind: PayerKind,
    pub opens: chrono::NaiveDate,
    pub closes: chrono::NaiveDate,
    pub source: String,
}

/// Test rows shared by the other modules' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::domain::deadline::WorkingDays;

    pub(crate) fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    pub(crate) fn ym(s: &str) -> YearMonth {
        YearMonth::parse(s).unwrap()
    }

    /// Wuhan employee medical as in DOMAIN.md §4, with placeholder base figures.
    pub(crate) fn wuhan_medical() -> PolicyRule {
        PolicyRule {
            region: RegionCode::parse("420100").unwrap(),
            insurance_type: InsuranceType::EmployeeMedical,
            effective_from: ym("2021-01"),
            effective_to: None,
            standard_base: dec("6046.00"),
            floor: dec("3627.60"),
            cap: dec("18138.00"),
            employer_rate: dec("0.08"),
            employee_rate: dec("0.02"),
            flexible_rate: dec("0.06"),
            retiree_monthly_premium: Decimal::ZERO,
            retiree_pays_rate: false,
            deadline: DeadlineRule::LastWorkingDays {
                n: WorkingDays::new(5).unwrap(),
            },
            flexible_deadline: None,
            deadline_month: DeadlineMonth::SameMonth,
            arrival_working_days: 5,
            benefits_affected_from: None,
            yearly_premium: None,
            collection_period: None,
            in_use_from: None,
        }
    }

    /// Hangzhou 2020 (DOMAIN.md §4): standard 5960.25, floor 3321.60, cap 17880.75.
    pub(crate) fn hangzhou_2020(insurance_type: InsuranceType) -> PolicyRule {
        PolicyRule {
            region: RegionCode::parse("330100").unwrap(),
            insurance_type,
            effective_from: ym("2020-01"),
            effective_to: Some(ym("2020-12")),
            standard_base: dec("5960.25"),
            floor: dec("3321.60"),
            cap: dec("17880.75"),
            deadline_month: DeadlineMonth::NextMonth,
            ..wuhan_medical()
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::fixtures::{dec, hangzhou_2020, wuhan_medical, ym};
    use super::*;
    use crate::domain::deadline::{DayOfMonth, FreezeWindow, deadline};

    fn region(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    fn period(from: &str, to: Option<&str>) -> Period {
        Period {
            from: ym(from),
            to: to.map(ym),
        }
    }

    fn ranged(from: &str, to: Option<&str>) -> PolicyRule {
        PolicyRule {
            effective_from: ym(from),
            effective_to: to.map(ym),
            ..wuhan_medical()
        }
    }

    #[test]
    fn region_codes() {
        for good in ["420100", " 330100 ", "000000"] {
            assert_eq!(region(good).as_str(), good.trim());
        }
        for bad in ["", "42010", "4201000", "42010a", "４２０１００"] {
            assert_eq!(
                RegionCode::parse(bad),
                Err(RegionCodeError::Invalid(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(serde_json::to_string(&region("420100")).unwrap(), r#""420100""#);
        assert!(
            serde_json::from_str::<RegionCode>("420100").is_err(),
            "a number is refused"
        );
    }

    #[test]
    fn periods_contain_and_overlap() {
        let cases: &[(Period, &str, bool)] = &[
            (period("2021-01", Some("2021-12")), "2021-01", true),
            (period("2021-01", Some("2021-12")), "2021-12", true),
            (period("2021-01", Some("2021-12")), "2022-01", false),
            (period("2021-01", Some("2021-12")), "2020-12", false),
            (period("2021-01", None), "2199-12", true),
        ];
        for &(p, month, inside) in cases {
            assert_eq!(p.contains(ym(month)), inside, "{p} contains {month}");
        }
        let pairs: &[(Period, Period, bool)] = &[
            (period("2020-01", Some("2020-12")), period("2021-01", None), false),
            (period("2020-01", Some("2021-01")), period("2021-01", None), true),
            (period("2020-01", None), period("2021-01", None), true),
            (period("2021-01", None), period("2020-01", Some("2020-06")), false),
            (
                period("2020-01", Some("2020-12")),
                period("2020-03", Some("2020-04")),
                true,
            ),
        ];
        for &(a, b, overlap) in pairs {
            assert_eq!(a.overlaps(b), overlap, "{a} vs {b}");
            assert_eq!(b.overlaps(a), overlap, "{b} vs {a} (symmetric)");
        }
        assert_eq!(period("2021-01", None).to_string(), "2021-01..");
        assert_eq!(period("2020-01", Some("2020-12")).to_string(), "2020-01..2020-12");
    }

    #[test]
    fn rule_for_picks_the_period_containing_the_month() {
        // Jinan moved its deadline from the 15th of M+1 to the end of M+1; DOMAIN.md gives no
        // date, so 2020-07 here is only for the test.
        let jinan = |from: &str, to: Option<&str>, deadline: DeadlineRule| PolicyRule {
            region: region("370100"),
            deadline,
            ..ranged(from, to)
        };
        let old = DeadlineRule::DayOfFollowingMonth {
            day: DayOfMonth::new(15).unwrap(),
        };
        let table = PolicyTable::new(vec![
            jinan("2019-01", Some("2020-06"), old),
            jinan("2020-07", None, DeadlineRule::EndOfFollowingMonth {}),
            wuhan_medical(),
        ])
        .unwrap();
        let medical = InsuranceType::EmployeeMedical;
        let cases: &[(&str, &str, Option<DeadlineRule>)] = &[
            ("370100", "2018-12", None),
            ("370100", "2019-01", Some(old)),
            ("370100", "2020-06", Some(old)),
            ("370100", "2020-07", Some(DeadlineRule::EndOfFollowingMonth {})),
            ("370100", "2030-01", Some(DeadlineRule::EndOfFollowingMonth {})),
            ("330100", "2020-07", None),
        ];
        for &(code, month, expected) in cases {
            assert_eq!(
                table
                    .rule_for(&region(code), medical, ym(month))
                    .map(|r| r.deadline),
                expected,
                "{code} {month}"
            );
        }
        assert!(
            table
                .rule_for(&region("420100"), InsuranceType::Pension, ym("2021-05"))
                .is_none(),
            "another insurance type has its own rows"
        );
        let cal = Calendar::default();
        let june = table.rule_for(&region("370100"), medical, ym("2020-06")).unwrap();
        let july = table.rule_for(&region("370100"), medical, ym("2020-07")).unwrap();
        assert_eq!(
            deadline(ym("2020-06"), &june.deadline, &cal, &[]),
            "2020-07-15".parse::<NaiveDate>().unwrap()
        );
        assert_eq!(
            deadline(ym("2020-07"), &july.deadline, &cal, &[]),
            "2020-08-31".parse::<NaiveDate>().unwrap()
        );
    }

    #[test]
    fn overlapping_rows_are_refused_naming_the_pair() {
        let err = PolicyTable::new(vec![
            ranged("2020-01", Some("2020-12")),
            ranged("2021-01", None),
            ranged("2022-01", Some("2022-12")),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            PolicyError::Overlap {
                region: region("420100"),
                insurance_type: InsuranceType::EmployeeMedical,
                first: period("2021-01", None),
                second: period("2022-01", Some("2022-12")),
            }
        );
        assert_eq!(
            err.to_string(),
            "policy rules for 420100 employee_medical overlap: 2021-01.. and 2022-01..2022-12; \
             close the older one with effective_to"
        );
        // The same periods for another region or another type are fine.
        let other_region = PolicyRule {
            region: region("330100"),
            ..ranged("2021-01", None)
        };
        let other_type = PolicyRule {
            insurance_type: InsuranceType::Pension,
            ..ranged("2021-01", None)
        };
        assert!(PolicyTable::new(vec![ranged("2021-01", None), other_region, other_type]).is_ok());
    }

    #[test]
    fn invalid_rows_are_refused_naming_the_field() {
        type Change = fn(&mut PolicyRule);
        let cases: &[(&str, Change, &str)] = &[
            ("effective_to", |r| r.effective_to = Some(ym("2020-12")), "before"),
            ("floor", |r| r.floor = dec("20000"), "above cap"),
            ("cap", |r| r.cap = dec("-1"), "negative"),
            (
                "standard_base",
                |r| r.standard_base = dec("5960.255"),
                "more than 2 decimals",
            ),
            ("standard_base", |r| r.standard_base = dec("0"), "zero"),
            (
                "retiree_monthly_premium",
                |r| r.retiree_monthly_premium = dec("-7"),
                "negative",
            ),
            ("employer_rate", |r| r.employer_rate = dec("8"), "between 0 and 1"),
            (
                "employee_rate",
                |r| r.employee_rate = dec("-0.02"),
                "between 0 and 1",
            ),
            (
                "flexible_rate",
                |r| r.flexible_rate = dec("1.01"),
                "between 0 and 1",
            ),
            // A yearly premium and its period, and a rule's in-use month.
            (
                "collection_period",
                |r| r.yearly_premium = Some(dec("380")),
                "required with a yearly premium",
            ),
            (
                "yearly_premium",
                |r| r.collection_period = Some(september_to_december()),
                "required with a collection period",
            ),
            (
                "yearly_premium",
                |r| r.insurance_type = InsuranceType::ResidentMedical,
                "required for resident medical",
            ),
            (
                "yearly_premium",
                |r| {
                    r.yearly_premium = Some(dec("380.001"));
                    r.collection_period = Some(september_to_december());
                },
                "more than 2 decimals",
            ),
            (
                "in_use_from",
                |r| r.in_use_from = Some(ym("2021-01")),
                "after its first",
            ),
            (
                "in_use_from",
                |r| {
                    r.effective_to = Some(ym("2021-12"));
                    r.in_use_from = Some(ym("2022-07"));
                },
                "not a month of the period 2021-01..2021-12",
            ),
        ];
        for &(field, change, problem) in cases {
            let mut rule = wuhan_medical();
            change(&mut rule);
            match PolicyTable::new(vec![rule]) {
                Err(PolicyError::InvalidField {
                    field: named,
                    problem: text,
                    ..
                }) => {
                    assert_eq!(named, field);
                    assert!(text.contains(problem), "{field}: {text}");
                }
                other => panic!("{field}: expected InvalidField, got {other:?}"),
            }
        }
        // Trailing zeros are not extra decimals; a rate may be 0 or 1.
        let fine = PolicyRule {
            standard_base: dec("5960.2500"),
            employer_rate: Decimal::ZERO,
            flexible_rate: Decimal::ONE,
            ..wuhan_medical()
        };
        assert!(PolicyTable::new(vec![fine]).is_ok());
    }

    fn september_to_december() -> CollectionPeriod {
        CollectionPeriod {
            opens: MonthDay::parse("09-01").unwrap(),
            closes: MonthDay::parse("12-31").unwrap(),
        }
    }

    #[test]
    fn collection_periods_open_in_the_year_before_the_coverage_year() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            september_to_december().for_year(2022),
            (day("2021-09-01"), day("2021-12-31"))
        );
        let into_the_year = CollectionPeriod {
            opens: MonthDay::parse("09-01").unwrap(),
            closes: MonthDay::parse("02-29").unwrap(),
        };
        assert_eq!(
            into_the_year.for_year(2024),
            (day("2023-09-01"), day("2024-02-29"))
        );
        assert_eq!(
            into_the_year.for_year(2023),
            (day("2022-09-01"), day("2023-02-28"))
        );
        for bad in ["9-01", "13-01", "02-30", "0901", "aa-bb", ""] {
            assert!(MonthDay::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_value(september_to_december()).unwrap(),
            serde_json::json!({"opens": "09-01", "closes": "12-31"})
        );
        let rule = PolicyRule {
            insurance_type: InsuranceType::ResidentMedical,
            yearly_premium: Some(dec("380")),
            collection_period: Some(september_to_december()),
            ..wuhan_medical()
        };
        let cal = Calendar::default();
        assert_eq!(rule.premium_due_date(ym("2022-01"), &cal), day("2021-12-31"));
        // Enrolled during the year: the row's own deadline of that month (Wuhan: before the
        // last 5 working days; no holidays in this calendar).
        assert_eq!(rule.premium_due_date(ym("2022-03"), &cal), day("2022-03-24"));
    }

    #[test]
    fn a_row_in_use_later_is_applied_with_the_figures_before_it_until_then() {
        let y2019 = PolicyRule {
            effective_from: ym("2019-01"),
            effective_to: Some(ym("2019-12")),
            standard_base: dec("5536.00"),
            floor: dec("3321.60"),
            cap: dec("16608.00"),
            ..hangzhou_2020(InsuranceType::EmployeeMedical)
        };
        let y2020 = PolicyRule {
            in_use_from: Some(ym("2020-07")),
            employer_rate: dec("0.09"),
            ..hangzhou_2020(InsuranceType::EmployeeMedical)
        };
        let pension = hangzhou_2020(InsuranceType::Pension);
        let all = [y2019.clone(), y2020.clone(), pension];
        let before = preceding(&all, &y2020);
        assert_eq!(before, Some(&y2019));
        let p = y2020.provisional(before);
        assert_eq!(
            (p.standard_base, p.floor, p.cap, p.employer_rate, p.effective_from),
            (
                dec("5536.00"),
                dec("3321.60"),
                dec("16608.00"),
                dec("0.09"),
                ym("2020-01")
            ),
            "the base figures of 2019, the rates and period its own"
        );
        assert_eq!(y2020.provisional(None), y2020, "nothing before it: as it is");
        assert_eq!(y2019.provisional(None), y2019);
        assert!(preceding(&all, &y2019).is_none());
    }

    #[test]
    fn flexible_workers_may_have_their_own_deadline() {
        let debit = DeadlineRule::DebitDay {
            day: DayOfMonth::new(20).unwrap(),
        };
        let rule = PolicyRule {
            flexible_deadline: Some(debit),
            ..wuhan_medical()
        };
        assert_eq!(rule.deadline_for(Category::Flexible, true), &debit);
        assert_eq!(
            rule.deadline_for(Category::Flexible, false),
            &rule.deadline,
            "no agreement, no debit day"
        );
        assert_eq!(rule.deadline_for(Category::Employee, true), &rule.deadline);
        assert_eq!(rule.deadline_for(Category::Retiree, true), &rule.deadline);
        assert_eq!(rule.deadline_for(Category::Resident, true), &rule.deadline);
        assert_eq!(
            wuhan_medical().deadline_for(Category::Flexible, true),
            &wuhan_medical().deadline
        );
    }

    #[test]
    fn a_table_deserialises_from_any_serde_format_through_new() {
        let json = r#"{
            "calendar": {"holidays": ["2021-10-01"], "extra_workdays": ["2021-10-09"]},
            "rules": [{
                "region": "330100", "insurance_type": "pension",
                "effective_from": "2020-01", "effective_to": "2020-12",
                "standard_base": "5960.25", "floor": "3321.60", "cap": "17880.75",
                "employer_rate": "0.16", "employee_rate": "0.08", "flexible_rate": "0.20",
                "retiree_monthly_premium": "0", "retiree_pays_rate": false,
                "deadline": {"kind": "day_of_following_month", "day": 15}
            }]
        }"#;
        let seed: PolicySeed = serde_json::from_str(json).unwrap();
        assert_eq!(seed.rules.rules().len(), 1);
        assert_eq!(seed.rules.rules()[0].floor, dec("3321.60"));
        let round_trip: PolicySeed = serde_json::from_str(&serde_json::to_string(&seed).unwrap()).unwrap();
        assert_eq!(round_trip, seed);

        let overlapping = format!(
            r#"[{0}, {0}]"#,
            serde_json::to_string(&hangzhou_2020(InsuranceType::Pension)).unwrap()
        );
        let err = serde_json::from_str::<PolicyTable>(&overlapping).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        let unknown_field = json.replace("\"floor\"", "\"flor\"");
        assert!(serde_json::from_str::<PolicySeed>(&unknown_field).is_err());
        let float_rate = json.replace("\"0.16\"", "0.16");
        assert!(
            serde_json::from_str::<PolicySeed>(&float_rate).is_err(),
            "decimals must be strings, never floats"
        );
    }

    const SEED_YAML: &str = include_str!("../../policy/seed.yaml");

    /// Loads the seed through the `config` crate's YAML parser (a dev-dependency); the
    /// service can use any serde YAML deserialiser instead.
    fn seed() -> PolicySeed {
        config::Config::builder()
            .add_source(config::File::from_str(SEED_YAML, config::FileFormat::Yaml))
            .build()
            .and_then(config::Config::try_deserialize)
            .unwrap_or_else(|e| panic!("policy/seed.yaml does not load: {e}"))
    }

    #[test]
    fn seed_yaml_loads_and_holds_the_domain_figures() {
        let seed = seed();
        let wuhan = region("420100");
        let hangzhou = region("330100");
        let rule = |code: &RegionCode, t: InsuranceType, month: &str| {
            seed.rules
                .rule_for(code, t, ym(month))
                .unwrap_or_else(|| panic!("no seed rule for {code} {t} {month}"))
        };

        let medical = rule(&wuhan, InsuranceType::EmployeeMedical, "2021-12");
        assert_eq!(
            (
                medical.employer_rate,
                medical.employee_rate,
                medical.flexible_rate
            ),
            (dec("0.08"), dec("0.02"), dec("0.06"))
        );
        assert!(!medical.retiree_pays_rate);
        assert!(medical.retiree_monthly_premium.is_zero());
        assert_eq!(
            medical.deadline_for(Category::Flexible, true),
            &DeadlineRule::DebitDay {
                day: DayOfMonth::new(20).unwrap()
            }
        );
        assert_eq!(medical.deadline_month, DeadlineMonth::SameMonth);
        assert_eq!(medical.arrival_working_days, 5);
        assert_eq!(
            medical.benefits_affected_from,
            Some("2022-04-01".parse().unwrap())
        );
        let large = rule(&wuhan, InsuranceType::LargeAmountMedical, "2021-12");
        assert_eq!(large.retiree_monthly_premium, dec("7"));
        assert!(!large.retiree_pays_rate);
        let pension = rule(&wuhan, InsuranceType::Pension, "2022-03");
        assert_eq!(
            (pension.employer_rate, pension.employee_rate),
            (dec("0.16"), dec("0.08"))
        );
        let unemployment = rule(&wuhan, InsuranceType::Unemployment, "2021-01");
        assert_eq!(
            (unemployment.employer_rate, unemployment.employee_rate),
            (dec("0.005"), dec("0.005"))
        );
        let injury = rule(&wuhan, InsuranceType::WorkInjury, "2021-01");
        assert_eq!(
            (injury.employer_rate, injury.employee_rate),
            (dec("0.005"), Decimal::ZERO)
        );
        assert!(
            seed.rules
                .rule_for(&wuhan, InsuranceType::EmployeeMedical, ym("2020-12"))
                .is_none(),
            "Wuhan rows start in 2021"
        );

        for t in [
            InsuranceType::EmployeeMedical,
            InsuranceType::Pension,
            InsuranceType::Unemployment,
            InsuranceType::WorkInjury,
        ] {
            let r = rule(&hangzhou, t, "2020-07");
            assert_eq!(
                (r.standard_base, r.floor, r.cap),
                (dec("5960.25"), dec("3321.60"), dec("17880.75")),
                "Hangzhou 2020 {t}"
            );
            assert!(seed.rules.rule_for(&hangzhou, t, ym("2021-01")).is_none());
        }

        // Resident medical: a yearly premium collected before the year (PLACEHOLDER figures).
        let resident = rule(&wuhan, InsuranceType::ResidentMedical, "2022-01");
        assert_eq!(resident.yearly_premium, Some(dec("380.00")));
        assert_eq!(
            resident.collection_period.map(|p| p.for_year(2022)),
            Some(("2021-09-01".parse().unwrap(), "2021-12-31".parse().unwrap()))
        );
        // Hangzhou 2020 is in use from July, on the 2019 figures until then (only the floor
        // is from DOMAIN.md; the 2019 standard and cap are placeholders).
        for t in [
            InsuranceType::EmployeeMedical,
            InsuranceType::Pension,
            InsuranceType::Unemployment,
            InsuranceType::WorkInjury,
        ] {
            let y2020 = rule(&hangzhou, t, "2020-01");
            assert_eq!(y2020.in_use_from, Some(ym("2020-07")), "{t}");
            let p = y2020.provisional(preceding(seed.rules.rules(), y2020));
            assert_eq!(
                (p.standard_base, p.floor, p.cap),
                (dec("5536.00"), dec("3321.60"), dec("16608.00")),
                "Hangzhou January-June 2020 {t}, provisionally"
            );
        }

        let cal = &seed.calendar;
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        for (d, working) in [
            ("2020-01-01", false),
            ("2020-01-19", true),
            ("2020-02-02", false),
            ("2020-02-03", true),
            ("2020-05-09", true),
            ("2020-10-08", false),
            ("2020-10-10", true),
            ("2021-02-07", true),
            ("2021-02-20", true),
            ("2021-06-14", false),
            ("2021-09-18", true),
            ("2021-10-07", false),
            ("2021-10-09", true),
            ("2022-01-03", false),
        ] {
            assert_eq!(cal.is_working_day(day(d)), working, "{d}");
        }

        // The Wuhan stop applied with the seed's own rule and calendar (DOMAIN.md §8):
        // December 2021 is due within December, before 12-27, inside the stop.
        let stop = FreezeWindow::new(
            "2021-12-22T18:00:00".parse().unwrap(),
            "2021-12-31T23:00:00".parse().unwrap(),
            None,
        )
        .unwrap();
        let employee = |month: &str, freezes: &[FreezeWindow]| {
            let r = rule(&wuhan, InsuranceType::EmployeeMedical, month);
            r.due_date(ym(month), Category::Employee, false, cal, freezes)
        };
        assert_eq!(employee("2021-12", &[]), day("2021-12-26"));
        assert_eq!(employee("2021-12", &[stop]), day("2022-01-04"));
        // Wuhan 2022, month M within M, with the 2022 calendar.
        for (month, due) in [
            ("2022-01", "2022-01-25"), // 01-29/30 make-up days, 01-31 Spring Festival
            ("2022-02", "2022-02-21"),
            ("2022-03", "2022-03-24"),
            ("2022-09", "2022-09-25"),
        ] {
            assert_eq!(employee(month, &[]), day(due), "Wuhan {month}");
        }
        for (d, working) in [
            ("2022-01-29", true),
            ("2022-01-31", false),
            ("2022-04-02", true),
            ("2022-04-05", false),
            ("2022-04-24", true),
            ("2022-05-04", false),
            ("2022-05-07", true),
            ("2022-06-03", false),
            ("2022-09-12", false),
            ("2022-10-07", false),
            ("2022-10-08", true),
            ("2022-10-09", true),
        ] {
            assert_eq!(cal.is_working_day(day(d)), working, "{d}");
        }

        // Jinan: the 15th until January 2020, the month end from February 2020.
        let jinan = region("370100");
        let jinan_due = |month: &str| {
            rule(&jinan, InsuranceType::EmployeeMedical, month).due_date(
                ym(month),
                Category::Employee,
                false,
                cal,
                &[],
            )
        };
        assert_eq!(jinan_due("2020-01"), day("2020-01-15"));
        assert_eq!(jinan_due("2020-02"), day("2020-02-29"));
        // Hangzhou collects July 2020 in August; the override moves employers to 08-25.
        let hz = rule(&hangzhou, InsuranceType::EmployeeMedical, "2020-07");
        assert_eq!(hz.deadline_month, DeadlineMonth::NextMonth);
        assert_eq!(
            hz.due_date(ym("2020-07"), Category::Employee, false, cal, &[]),
            day("2020-08-15")
        );
        assert_eq!(
            seed.deadline_overrides,
            vec![DeadlineOverride {
                region: hangzhou.clone(),
                month: ym("2020-07"),
                payer_kind: PayerKind::Employer,
                opens: day("2020-08-01"),
                closes: day("2020-08-25"),
                source: "Hangzhou 2020 cutover notice: July declaration 8-1 → 8-25".into(),
            }]
        );
    }
}

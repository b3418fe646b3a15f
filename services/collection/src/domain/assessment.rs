//! Assessment (核定): the line items one person owes for one insurance type and one month.
//!
//! DOMAIN.md §4: employer 8% of its employees' bases and employee 2% of their own base
//! (withheld by the employer), flexible workers 6%, retirees 0 + 7 yuan large-amount premium
//! per month (Wuhan employee medical); "round half up per line item; the sum of rounded line
//! items is what is due". The agencies assess, the tax authority collects: these items are
//! what is sent to it.

use std::fmt;

use contracts::InsuranceType;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::Money;
use super::policy::PolicyRule;

/// The kind of insured person, which decides who pays what (DOMAIN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Employed: employer and employee shares.
    Employee,
    /// Flexible worker 灵活就业人员: pays alone, at the flexible rate.
    Flexible,
    /// Resident 城乡居民 (resident medical): pays alone.
    Resident,
    /// Retiree 退休人员: a fixed premium only, unless the row says retirees pay the rate.
    Retiree,
}

impl Category {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Employee => "employee",
            Category::Flexible => "flexible",
            Category::Resident => "resident",
            Category::Retiree => "retiree",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a line item is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payer {
    /// The employer's own share (单位缴费).
    Employer,
    /// The employee's share, withheld and paid over by the employer (个人缴费, 代扣代缴).
    Employee,
    /// A person paying alone: flexible worker, resident, retiree.
    Person,
}

/// One amount due: `amount = round_fen(base × rate)`, or a fixed premium (`rate` 0, `base`
/// 0.00, `amount` the premium).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct LineItem {
    pub payer: Payer,
    pub insurance_type: InsuranceType,
    pub base: Money,
    pub rate: Decimal,
    pub amount: Money,
}

impl LineItem {
    fn at_rate(payer: Payer, insurance_type: InsuranceType, base: Money, rate: Decimal) -> Self {
        // rate ≤ 1 (checked by PolicyTable::new), so the product cannot overflow.
        Self {
            payer,
            insurance_type,
            base,
            rate,
            amount: Money::round_fen(base.amount() * rate),
        }
    }
}

/// The line items for one person of `category`, one insurance type (the rule's) and one
/// month, on `base` (from `base::determine_base`).
///
/// - Employee: an Employer item at `employer_rate` and an Employee item at `employee_rate`.
/// - Flexible: one Person item at `flexible_rate`.
/// - Resident, under a row with a `yearly_premium` (resident medical): nothing monthly; the
///   premium is charged once a year, see [`assess_resident`].
/// - Resident otherwise (resident pension): one Person item at `flexible_rate` on the
///   standard base: the person pays alone, like a flexible worker.
/// - Retiree, where the row says `retiree_pays_rate`: one Person item at `flexible_rate`
///   (a retiree pays alone, like everyone who has no employer), no fixed premium.
/// - Retiree otherwise: no rate items, only a fixed Person item of `retiree_monthly_premium`
///   (base 0.00, rate 0) when it is above zero. Wuhan: nothing for basic medical, 7.00 for
///   large-amount medical (DOMAIN.md §4 "retirees 0 + 7 yuan").
///
/// Items at a zero rate are left out (work injury has no employee share; unemployment has no
/// flexible rate): a 0.00 item would only be noise on the statement. Whether a category may
/// enrol in the type at all is enrollment's concern, not checked here.
/// Each amount is rounded to fen separately, half up; see [`totals`].
#[must_use]
pub fn assess(category: Category, base: Money, rule: &PolicyRule) -> Vec<LineItem> {
    let t = rule.insurance_type;
    let mut items = Vec::with_capacity(2);
    let mut rated = |payer, rate: Decimal| {
        if !rate.is_zero() {
            items.push(LineItem::at_rate(payer, t, base, rate));
        }
    };
    match category {
        Category::Employee => {
            rated(Payer::Employer, rule.employer_rate);
            rated(Payer::Employee, rule.employee_rate);
        }
        Category::Resident if rule.yearly_premium.is_some() => {}
        Category::Flexible | Category::Resident => rated(Payer::Person, rule.flexible_rate),
        Category::Retiree if rule.retiree_pays_rate => rated(Payer::Person, rule.flexible_rate),
        Category::Retiree => {
            let premium = Money::round_fen(rule.retiree_monthly_premium);
            if premium > Money::ZERO {
                items.push(LineItem {
                    payer: Payer::Person,
                    insurance_type: t,
                    base: Money::ZERO,
                    rate: Decimal::ZERO,
                    amount: premium,
                });
            }
        }
    }
    items
}

/// The employer's share for one insurance type: `employer_rate` of the sum of its employees'
/// bases, rounded once (Wuhan: "用人单位以本单位职工缴费基数之和作为缴费基数"), and the
/// rounding item that reconciles it with the per-person employer items the statement shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct EmployerShare {
    /// The employer's base: the sum of its employees' bases.
    pub base: Money,
    pub rate: Decimal,
    /// `round_fen(base × rate)`: what the employer owes.
    pub amount: Money,
    /// `amount` minus the sum of the per-person employer items (each rounded on its own).
    pub rounding: Money,
}

/// The employer's share on the sum of `bases` (one per employee) at `rate`. Three employees
/// at 6666.69: base 20000.07, 8 % → 1600.01, while three per-person items of 533.34 sum to
/// 1600.02, so the rounding item is -0.01.
#[must_use]
pub fn employer_share(bases: &[Money], rate: Decimal) -> EmployerShare {
    let base: Money = bases.iter().copied().sum();
    let amount = Money::round_fen(base.amount() * rate);
    let per_person: Money = bases.iter().map(|b| Money::round_fen(b.amount() * rate)).sum();
    EmployerShare {
        base,
        rate,
        amount,
        rounding: amount - per_person,
    }
}

/// A retiree's items: with the minimum contribution years met, only the fixed premium (or
/// the rate where the row says `retiree_pays_rate`), see [`assess`]; before that the retiree
/// pays as a flexible worker on `base`, and the fixed premium too (the large-amount premium
/// is owed by every retiree, DOMAIN.md §1).
#[must_use]
pub fn assess_retiree(minimum_years_met: bool, base: Money, rule: &PolicyRule) -> Vec<LineItem> {
    if minimum_years_met {
        return assess(Category::Retiree, base, rule);
    }
    let mut items = assess(Category::Flexible, base, rule);
    if !rule.retiree_pays_rate {
        items.extend(assess(Category::Retiree, base, rule));
    }
    items
}

/// A resident's items for one month. Under a row with a `yearly_premium` (resident medical
/// 城乡居民医疗: a fixed amount per person and year, DOMAIN.md §3 "Residents … enroll in
/// resident medical yearly"): the premium as one Person item (base 0.00, rate 0) in the first
/// month of the calendar year the person is covered (`first_month_of_year`, see
/// [`first_covered_month_of_year`]), nothing in the other months. Under a row without one:
/// the monthly items of [`assess`].
#[must_use]
pub fn assess_resident(first_month_of_year: bool, base: Money, rule: &PolicyRule) -> Vec<LineItem> {
    match rule.yearly_premium {
        Some(premium) => {
            let premium = Money::round_fen(premium);
            if first_month_of_year && premium > Money::ZERO {
                vec![LineItem {
                    payer: Payer::Person,
                    insurance_type: rule.insurance_type,
                    base: Money::ZERO,
                    rate: Decimal::ZERO,
                    amount: premium,
                }]
            } else {
                Vec::new()
            }
        }
        None => assess(Category::Resident, base, rule),
    }
}

/// Whether `month` is the first month of its calendar year in which a person with coverage
/// `periods` (inclusive first and last months, the last open while covered) is covered: the
/// month a yearly premium is charged. False when `month` itself is not covered.
#[must_use]
pub fn first_covered_month_of_year(
    periods: &[(contracts::ids::YearMonth, Option<contracts::ids::YearMonth>)],
    month: contracts::ids::YearMonth,
) -> bool {
    let covers = |m: contracts::ids::YearMonth| {
        periods
            .iter()
            .any(|&(from, to)| from <= m && to.is_none_or(|to| m <= to))
    };
    if !covers(month) {
        return false;
    }
    let mut m = month;
    while let Some(prev) = m.prev().filter(|p| p.year() == month.year()) {
        if covers(prev) {
            return false;
        }
        m = prev;
    }
    true
}

/// What is due, by payer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Totals {
    pub employer: Money,
    pub employee: Money,
    pub person: Money,
    pub total: Money,
}

/// Sums of the rounded items: per DOMAIN.md §4 the sum of rounded line items is what is due,
/// never the rounding of a summed rate (3333.33 × 8% + × 2% is 266.67 + 66.67 = 333.34, not
/// round(3333.33 × 10%) = 333.33).
#[must_use]
pub fn totals(items: &[LineItem]) -> Totals {
    let by = |payer: Payer| -> Money { items.iter().filter(|i| i.payer == payer).map(|i| i.amount).sum() };
    Totals {
        employer: by(Payer::Employer),
        employee: by(Payer::Employee),
        person: by(Payer::Person),
        total: items.iter().map(|i| i.amount).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::fixtures::{dec, wuhan_medical};

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    /// (payer, rate, amount) of each item, for compact expectations.
    fn shape(items: &[LineItem]) -> Vec<(Payer, Decimal, Money)> {
        items.iter().map(|i| (i.payer, i.rate, i.amount)).collect()
    }

    fn wuhan_large_amount() -> PolicyRule {
        PolicyRule {
            insurance_type: InsuranceType::LargeAmountMedical,
            employer_rate: Decimal::ZERO,
            employee_rate: Decimal::ZERO,
            flexible_rate: Decimal::ZERO,
            retiree_monthly_premium: dec("7"),
            ..wuhan_medical()
        }
    }

    #[test]
    fn wuhan_employee_medical_vectors() {
        /// (category, base, expected (payer, rate, amount) items, expected total).
        type Case = (
            Category,
            &'static str,
            Vec<(Payer, &'static str, &'static str)>,
            &'static str,
        );
        let medical = wuhan_medical();
        let cases: Vec<Case> = vec![
            (
                Category::Employee,
                "5000",
                vec![
                    (Payer::Employer, "0.08", "400.00"),
                    (Payer::Employee, "0.02", "100.00"),
                ],
                "500.00",
            ),
            (
                Category::Flexible,
                "5000",
                vec![(Payer::Person, "0.06", "300.00")],
                "300.00",
            ),
            (
                Category::Resident,
                "5000",
                vec![(Payer::Person, "0.06", "300.00")],
                "300.00",
            ),
            (Category::Retiree, "5000", vec![], "0.00"),
            (
                Category::Employee,
                "3333.33",
                vec![
                    (Payer::Employer, "0.08", "266.67"),
                    (Payer::Employee, "0.02", "66.67"),
                ],
                "333.34",
            ),
        ];
        for (category, base, expected, total) in cases {
            let items = assess(category, money(base), &medical);
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(payer, rate, amount)| (payer, dec(rate), money(amount)))
                .collect();
            assert_eq!(shape(&items), expected, "{category} on {base}");
            assert!(items.iter().all(|i| i.base == money(base) || i.rate.is_zero()));
            assert!(
                items
                    .iter()
                    .all(|i| i.insurance_type == InsuranceType::EmployeeMedical)
            );
            assert_eq!(totals(&items).total, money(total), "{category} on {base}");
        }
    }

    #[test]
    fn the_employer_share_is_rounded_once_on_the_sum_of_bases() {
        let three = [money("6666.69"); 3];
        let share = employer_share(&three, dec("0.08"));
        assert_eq!(share.base, money("20000.07"));
        assert_eq!(share.amount, money("1600.01"), "not 3 × 533.34 = 1600.02");
        assert_eq!(share.rounding, -money("0.01"));
        let employee = assess(Category::Employee, money("6666.69"), &wuhan_medical());
        assert_eq!(employee[1].amount, money("133.33"), "each employee's own 2 %");
        assert_eq!(employee[0].amount, money("533.34"), "the per-person line shown");
        let one = employer_share(&[money("5000.00")], dec("0.08"));
        assert_eq!((one.amount, one.rounding), (money("400.00"), Money::ZERO));
        assert_eq!(employer_share(&[], dec("0.08")).amount, Money::ZERO);
    }

    #[test]
    fn a_retiree_pays_as_a_flexible_worker_until_the_minimum_years_are_met() {
        let base = money("6046.00");
        assert!(assess_retiree(true, base, &wuhan_medical()).is_empty());
        assert_eq!(
            shape(&assess_retiree(false, base, &wuhan_medical())),
            vec![(Payer::Person, dec("0.06"), money("362.76"))]
        );
        assert_eq!(
            shape(&assess_retiree(true, base, &wuhan_large_amount())),
            vec![(Payer::Person, Decimal::ZERO, money("7.00"))]
        );
        assert_eq!(
            shape(&assess_retiree(false, base, &wuhan_large_amount())),
            vec![(Payer::Person, Decimal::ZERO, money("7.00"))],
            "the large-amount premium is owed either way"
        );
    }

    #[test]
    fn rounding_is_per_item_not_on_the_sum() {
        let items = assess(Category::Employee, money("3333.33"), &wuhan_medical());
        let t = totals(&items);
        assert_eq!(
            (t.employer, t.employee, t.person, t.total),
            (money("266.67"), money("66.67"), Money::ZERO, money("333.34"))
        );
        assert_eq!(Money::round_fen(dec("3333.33") * dec("0.10")), money("333.33"));
    }

    #[test]
    fn wuhan_retiree_pays_the_large_amount_premium_only() {
        let base = money("6046.00");
        assert!(assess(Category::Retiree, base, &wuhan_medical()).is_empty());
        let items = assess(Category::Retiree, base, &wuhan_large_amount());
        assert_eq!(
            items,
            vec![LineItem {
                payer: Payer::Person,
                insurance_type: InsuranceType::LargeAmountMedical,
                base: Money::ZERO,
                rate: Decimal::ZERO,
                amount: money("7.00"),
            }]
        );
        assert_eq!(totals(&items).person, money("7.00"));
        // Employees and flexible workers pay nothing on this row (DOMAIN.md gives no rate).
        assert!(assess(Category::Employee, base, &wuhan_large_amount()).is_empty());
    }

    #[test]
    fn a_retiree_paying_the_rate_pays_it_alone_and_no_premium() {
        let rule = PolicyRule {
            retiree_pays_rate: true,
            retiree_monthly_premium: dec("7"),
            ..wuhan_medical()
        };
        assert_eq!(
            shape(&assess(Category::Retiree, money("5000"), &rule)),
            vec![(Payer::Person, dec("0.06"), money("300.00"))]
        );
    }

    fn resident_medical() -> PolicyRule {
        PolicyRule {
            insurance_type: InsuranceType::ResidentMedical,
            yearly_premium: Some(dec("380")),
            collection_period: Some(crate::domain::policy::CollectionPeriod {
                opens: crate::domain::policy::MonthDay::parse("09-01").unwrap(),
                closes: crate::domain::policy::MonthDay::parse("12-31").unwrap(),
            }),
            ..wuhan_medical()
        }
    }

    #[test]
    fn a_resident_pays_the_yearly_premium_once_in_the_first_covered_month() {
        let rule = resident_medical();
        let base = money("6046.00");
        assert_eq!(
            shape(&assess_resident(true, base, &rule)),
            vec![(Payer::Person, Decimal::ZERO, money("380.00"))]
        );
        assert!(assess_resident(false, base, &rule).is_empty(), "no monthly rate");
        assert!(assess(Category::Resident, base, &rule).is_empty());
        // A row without a yearly premium (resident pension): the monthly rate, as before.
        assert_eq!(
            shape(&assess_resident(false, base, &wuhan_medical())),
            vec![(Payer::Person, dec("0.06"), money("362.76"))]
        );
        use contracts::ids::YearMonth;
        let ym = |s: &str| YearMonth::parse(s).unwrap();
        let since_2021 = [(ym("2021-01"), None)];
        assert!(first_covered_month_of_year(&since_2021, ym("2022-01")));
        assert!(!first_covered_month_of_year(&since_2021, ym("2022-02")));
        let from_march = [(ym("2022-03"), None)];
        assert!(
            !first_covered_month_of_year(&from_march, ym("2022-02")),
            "not covered"
        );
        assert!(first_covered_month_of_year(&from_march, ym("2022-03")));
        assert!(!first_covered_month_of_year(&from_march, ym("2022-04")));
        // Suspended in April, covered again from July: the year's premium was charged in March.
        let broken = [(ym("2022-03"), Some(ym("2022-04"))), (ym("2022-07"), None)];
        assert!(!first_covered_month_of_year(&broken, ym("2022-07")));
        assert!(first_covered_month_of_year(&broken, ym("2023-01")));
    }

    #[test]
    fn zero_rates_make_no_items() {
        let work_injury = PolicyRule {
            insurance_type: InsuranceType::WorkInjury,
            employer_rate: dec("0.005"),
            employee_rate: Decimal::ZERO,
            flexible_rate: Decimal::ZERO,
            ..wuhan_medical()
        };
        assert_eq!(
            shape(&assess(Category::Employee, money("5000"), &work_injury)),
            vec![(Payer::Employer, dec("0.005"), money("25.00"))]
        );
        assert!(assess(Category::Flexible, money("5000"), &work_injury).is_empty());
        assert_eq!(totals(&[]), Totals::default());
        assert_eq!(totals(&[]).total, Money::ZERO);
    }

    #[test]
    fn serde_shapes() {
        let items = assess(Category::Employee, money("5000"), &wuhan_medical());
        assert_eq!(
            serde_json::to_value(items[0]).unwrap(),
            serde_json::json!({
                "payer": "employer", "insurance_type": "employee_medical",
                "base": "5000.00", "rate": "0.08", "amount": "400.00"
            })
        );
        assert_eq!(
            serde_json::to_value(totals(&items)).unwrap(),
            serde_json::json!({
                "employer": "400.00", "employee": "100.00", "person": "0.00", "total": "500.00"
            })
        );
        assert_eq!(serde_json::to_value(Category::Flexible).unwrap(), "flexible");
        assert_eq!(Category::Retiree.to_string(), "retiree");
    }

    /// A 64-bit linear congruential generator (Knuth's MMIX constants): deterministic, no
    /// extra crate, good enough to spread bases and rates.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn property_items_are_fen_exact_and_sum_to_the_total() {
        const RATES: [&str; 10] = [
            "0.08", "0.02", "0.06", "0.16", "0.005", "0.002", "0.0075", "0.095", "0.2", "0.001",
        ];
        let rates: Vec<Decimal> = RATES.iter().map(|r| dec(r)).collect();
        let half_fen = dec("0.005");
        let mut rng = Lcg(20_211_222);
        for round in 0..5_000 {
            // 0.01 ..= 50000.00 yuan.
            let fen = i64::try_from(rng.below(5_000_000)).unwrap() + 1;
            let base = Money::from_fen(fen);
            let pick = |rng: &mut Lcg| rates[usize::try_from(rng.below(RATES.len() as u64)).unwrap()];
            let rule = PolicyRule {
                employer_rate: pick(&mut rng),
                employee_rate: pick(&mut rng),
                flexible_rate: pick(&mut rng),
                ..wuhan_medical()
            };
            let mut items = assess(Category::Employee, base, &rule);
            items.extend(assess(Category::Flexible, base, &rule));
            assert_eq!(items.len(), 3, "round {round}");
            for item in &items {
                assert_eq!(item.amount.amount().scale(), 2, "round {round}: {item:?}");
                let exact = base.amount() * item.rate;
                let error = (item.amount.amount() - exact).abs();
                assert!(error <= half_fen, "round {round}: {item:?} vs exact {exact}");
                // Half up: an exact midpoint is rounded away from zero.
                if error == half_fen {
                    assert!(item.amount.amount() > exact, "round {round}: {item:?}");
                }
            }
            let t = totals(&items);
            let sum: Decimal = items.iter().map(|i| i.amount.amount()).sum();
            assert_eq!(t.total.amount(), sum, "round {round}");
            assert_eq!(t.employer + t.employee + t.person, t.total, "round {round}");
            assert_eq!(t.total.amount().scale(), 2, "round {round}");
        }
    }
}

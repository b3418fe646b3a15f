//! The contribution base (缴费基数): the monthly amount that rates are applied to.
//!
//! DOMAIN.md §4, per person, per insurance type, per year:
//! 1. the person's own previous-year average monthly wage; if none, the current-year monthly
//!    average; if none, the current month's wage;
//! 2. clamped to the floor and cap of the policy row — per insurance type, because floors and
//!    caps differ by line (Beijing 2021: pension floor 3613, medical floor 5360);
//! 3. flexible workers use the provincial standard base itself (Wuhan) or a band they chose.
//!
//! Retirees and residents have no wage to go by; they use the standard base (see
//! [`BaseInput`]).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::assessment::Category;
use super::money::Money;
use super::policy::PolicyRule;

/// The wages an employer reported for one employee, in yuan per month. Each may be missing
/// (a new hire has no previous-year average).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct WageEvidence {
    #[serde(default)]
    pub previous_year_average: Option<Decimal>,
    #[serde(default)]
    pub current_year_average: Option<Decimal>,
    #[serde(default)]
    pub current_month: Option<Decimal>,
}

/// What a base is determined from, by category of person.
///
/// An enum rather than loose options, so that an employee cannot carry a chosen band and a
/// flexible worker's reported wages cannot be mistaken for evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseInput {
    /// Wages reported by the employer (step 1).
    Employee(WageEvidence),
    /// The standard base, unless the worker chose a band (step 3). The chosen amount must lie
    /// within the row's floor..=cap: a band outside it is a data error, not something to
    /// clamp silently, because the worker chose what they would pay.
    Flexible { chosen_base: Option<Money> },
    /// DOMAIN.md gives retirees no base (they pay fixed premiums); the standard base is used
    /// for the rare row with `retiree_pays_rate`.
    Retiree,
    /// Resident medical: the standard base (see `assessment::assess`).
    Resident,
}

impl BaseInput {
    #[must_use]
    pub fn category(&self) -> Category {
        match self {
            BaseInput::Employee(_) => Category::Employee,
            BaseInput::Flexible { .. } => Category::Flexible,
            BaseInput::Retiree => Category::Retiree,
            BaseInput::Resident => Category::Resident,
        }
    }
}

/// Which figure the base was taken from, kept for the person's statement and for appeals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseSource {
    PreviousYearAverage,
    CurrentYearAverage,
    CurrentMonth,
    StandardBase,
    ChosenBand,
}

/// Whether the floor or cap changed the figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clamp {
    None,
    RaisedToFloor,
    LoweredToCap,
}

/// The base for one person, one insurance type, one period, with how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct BaseDetermination {
    pub base: Money,
    pub source: BaseSource,
    pub clamped: Clamp,
}

/// Why no base could be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseError {
    #[error(
        "no wage evidence for an employee: previous_year_average, current_year_average and \
         current_month are all missing"
    )]
    NoWageEvidence,
    #[error("wage evidence `{field}` is negative ({value})")]
    NegativeWage { field: &'static str, value: Decimal },
    #[error("chosen_base {chosen} lies outside the band {floor}..={cap} of the policy rule")]
    ChosenBaseOutsideBand {
        chosen: Money,
        floor: Decimal,
        cap: Decimal,
    },
}

/// The contribution base for `input` under `rule` (DOMAIN.md §4, steps 1-3).
///
/// The figure is clamped to `[rule.floor, rule.cap]` and then rounded to fen (half up).
/// Floors and caps are fen amounts (checked by `PolicyTable::new`), so rounding can never
/// push a base back outside the band.
///
/// # Errors
///
/// [`BaseError::NoWageEvidence`] for an employee with no wage at all;
/// [`BaseError::NegativeWage`] naming the field if any reported wage is negative;
/// [`BaseError::ChosenBaseOutsideBand`] for a flexible worker's band outside floor..=cap.
pub fn determine_base(input: &BaseInput, rule: &PolicyRule) -> Result<BaseDetermination, BaseError> {
    let (figure, source) = match input {
        BaseInput::Employee(evidence) => wage_figure(evidence)?,
        BaseInput::Flexible {
            chosen_base: Some(chosen),
        } => {
            if chosen.amount() < rule.floor || chosen.amount() > rule.cap {
                return Err(BaseError::ChosenBaseOutsideBand {
                    chosen: *chosen,
                    floor: rule.floor,
                    cap: rule.cap,
                });
            }
            (chosen.amount(), BaseSource::ChosenBand)
        }
        BaseInput::Flexible { chosen_base: None } | BaseInput::Retiree | BaseInput::Resident => {
            (rule.standard_base, BaseSource::StandardBase)
        }
    };
    let (clamped_figure, clamped) = if figure < rule.floor {
        (rule.floor, Clamp::RaisedToFloor)
    } else if figure > rule.cap {
        (rule.cap, Clamp::LoweredToCap)
    } else {
        (figure, Clamp::None)
    };
    Ok(BaseDetermination {
        base: Money::round_fen(clamped_figure),
        source,
        clamped,
    })
}

/// Step 1: the first wage present, in the order DOMAIN.md gives.
fn wage_figure(evidence: &WageEvidence) -> Result<(Decimal, BaseSource), BaseError> {
    let ordered = [
        (
            "previous_year_average",
            evidence.previous_year_average,
            BaseSource::PreviousYearAverage,
        ),
        (
            "current_year_average",
            evidence.current_year_average,
            BaseSource::CurrentYearAverage,
        ),
        ("current_month", evidence.current_month, BaseSource::CurrentMonth),
    ];
    // Every reported figure is checked, not only the one used: a negative wage anywhere is an
    // error in the employer's declaration.
    for (field, value, _) in ordered {
        if let Some(value) = value
            && value.is_sign_negative()
            && !value.is_zero()
        {
            return Err(BaseError::NegativeWage { field, value });
        }
    }
    ordered
        .into_iter()
        .find_map(|(_, value, source)| value.map(|v| (v, source)))
        .ok_or(BaseError::NoWageEvidence)
}

#[cfg(test)]
mod tests {
    use contracts::InsuranceType;

    use super::*;
    use crate::domain::policy::fixtures::{dec, hangzhou_2020, wuhan_medical};
    use crate::domain::policy::{PolicyRule, RegionCode};

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn previous_year(wage: &str) -> BaseInput {
        BaseInput::Employee(WageEvidence {
            previous_year_average: Some(dec(wage)),
            ..WageEvidence::default()
        })
    }

    #[test]
    fn hangzhou_2020_clamps() {
        let rule = hangzhou_2020(InsuranceType::Pension);
        // The standard base is 71523 / 12 rounded to fen; the floor stayed at the 2019 figure.
        assert_eq!(Money::round_fen(dec("71523") / dec("12")), money("5960.25"));
        assert_eq!(rule.standard_base, dec("5960.25"));
        let cases: &[(&str, &str, Clamp)] = &[
            ("3000", "3321.60", Clamp::RaisedToFloor),
            ("20000", "17880.75", Clamp::LoweredToCap),
            ("8000", "8000.00", Clamp::None),
            ("3321.60", "3321.60", Clamp::None),
            ("17880.75", "17880.75", Clamp::None),
            ("17880.754", "17880.75", Clamp::LoweredToCap),
            ("3321.595", "3321.60", Clamp::RaisedToFloor),
            ("0", "3321.60", Clamp::RaisedToFloor),
            ("8000.005", "8000.01", Clamp::None),
        ];
        for &(wage, base, clamp) in cases {
            assert_eq!(
                determine_base(&previous_year(wage), &rule).unwrap(),
                BaseDetermination {
                    base: money(base),
                    source: BaseSource::PreviousYearAverage,
                    clamped: clamp,
                },
                "wage {wage}"
            );
        }
    }

    #[test]
    fn beijing_2021_same_wage_two_floors() {
        // Beijing 2021 floors from DOMAIN.md §4; the other figures do not matter here (the
        // caps are the published 2021 ones as far as known, untested).
        let beijing = |insurance_type, floor: &str, cap: &str| PolicyRule {
            region: RegionCode::parse("110100").unwrap(),
            insurance_type,
            floor: dec(floor),
            cap: dec(cap),
            ..wuhan_medical()
        };
        let pension = beijing(InsuranceType::Pension, "3613", "26541");
        let medical = beijing(InsuranceType::EmployeeMedical, "5360", "29732");
        let wage = previous_year("4000");
        let on_pension = determine_base(&wage, &pension).unwrap();
        let on_medical = determine_base(&wage, &medical).unwrap();
        assert_eq!(
            (on_pension.base, on_pension.clamped),
            (money("4000"), Clamp::None)
        );
        assert_eq!(
            (on_medical.base, on_medical.clamped),
            (money("5360"), Clamp::RaisedToFloor)
        );
    }

    #[test]
    fn evidence_is_taken_in_domain_order() {
        let rule = hangzhou_2020(InsuranceType::EmployeeMedical);
        let w = |p: Option<&str>, c: Option<&str>, m: Option<&str>| {
            BaseInput::Employee(WageEvidence {
                previous_year_average: p.map(dec),
                current_year_average: c.map(dec),
                current_month: m.map(dec),
            })
        };
        let cases: &[(BaseInput, &str, BaseSource)] = &[
            (
                w(Some("8000"), Some("9000"), Some("10000")),
                "8000",
                BaseSource::PreviousYearAverage,
            ),
            (
                w(None, Some("9000"), Some("10000")),
                "9000",
                BaseSource::CurrentYearAverage,
            ),
            (w(None, None, Some("10000")), "10000", BaseSource::CurrentMonth),
            (
                w(Some("8000"), None, Some("10000")),
                "8000",
                BaseSource::PreviousYearAverage,
            ),
        ];
        for (input, base, source) in cases {
            let found = determine_base(input, &rule).unwrap();
            assert_eq!((found.base, found.source), (money(base), *source), "{input:?}");
        }
        assert_eq!(
            determine_base(&w(None, None, None), &rule),
            Err(BaseError::NoWageEvidence)
        );
        assert_eq!(
            determine_base(&w(Some("8000"), None, Some("-1")), &rule),
            Err(BaseError::NegativeWage {
                field: "current_month",
                value: dec("-1")
            })
        );
        assert_eq!(
            BaseError::NegativeWage {
                field: "current_month",
                value: dec("-1")
            }
            .to_string(),
            "wage evidence `current_month` is negative (-1)"
        );
    }

    #[test]
    fn flexible_retiree_and_resident_bases() {
        let rule = hangzhou_2020(InsuranceType::EmployeeMedical);
        let flexible = |chosen: Option<&str>| BaseInput::Flexible {
            chosen_base: chosen.map(money),
        };
        let cases: &[(BaseInput, &str, BaseSource)] = &[
            (flexible(None), "5960.25", BaseSource::StandardBase),
            (flexible(Some("3321.60")), "3321.60", BaseSource::ChosenBand),
            (flexible(Some("17880.75")), "17880.75", BaseSource::ChosenBand),
            (flexible(Some("8940.38")), "8940.38", BaseSource::ChosenBand),
            (BaseInput::Retiree, "5960.25", BaseSource::StandardBase),
            (BaseInput::Resident, "5960.25", BaseSource::StandardBase),
        ];
        for (input, base, source) in cases {
            let found = determine_base(input, &rule).unwrap();
            assert_eq!(
                found,
                BaseDetermination {
                    base: money(base),
                    source: *source,
                    clamped: Clamp::None
                },
                "{input:?}"
            );
        }
        for outside in ["3321.59", "17880.76", "0"] {
            assert_eq!(
                determine_base(&flexible(Some(outside)), &rule),
                Err(BaseError::ChosenBaseOutsideBand {
                    chosen: money(outside),
                    floor: dec("3321.60"),
                    cap: dec("17880.75"),
                }),
                "{outside}"
            );
        }
        // A standard base outside the band (not the case in any seed row) is still clamped.
        let odd = PolicyRule {
            standard_base: dec("3000"),
            ..rule
        };
        assert_eq!(
            determine_base(&flexible(None), &odd).unwrap().clamped,
            Clamp::RaisedToFloor
        );
    }

    #[test]
    fn categories_and_serde() {
        let cases = [
            (previous_year("1"), Category::Employee),
            (BaseInput::Flexible { chosen_base: None }, Category::Flexible),
            (BaseInput::Retiree, Category::Retiree),
            (BaseInput::Resident, Category::Resident),
        ];
        for (input, category) in cases {
            assert_eq!(input.category(), category);
        }
        let found = determine_base(&previous_year("3000"), &hangzhou_2020(InsuranceType::Pension)).unwrap();
        assert_eq!(
            serde_json::to_value(found).unwrap(),
            serde_json::json!({
                "base": "3321.60", "source": "previous_year_average", "clamped": "raised_to_floor"
            })
        );
        let evidence: WageEvidence = serde_json::from_str(r#"{"current_month": "8000.50"}"#).unwrap();
        assert_eq!(evidence.current_month, Some(dec("8000.50")));
        assert_eq!(evidence.previous_year_average, None);
    }
}

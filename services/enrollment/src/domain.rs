//! Enrollment rules, without I/O: turning command DTOs into validated values, and which
//! insurance types each category of person may hold. Every rejection names its field.

use contracts::enrollment::commands as c;
use contracts::ids::{CreditCode, IdNumber, Phone, RegionCode, YearMonth};
use contracts::{ErrorBody, ErrorCode, InsuranceType, Line};
use std::fmt;

pub type Rejection = ErrorBody;

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::InvalidField, message).with_field(field)
}

pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::NotFound, message).with_field(field)
}

pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::Conflict, message).with_field(field)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Employee,
    Flexible,
    Resident,
    Retiree,
}

impl Category {
    pub fn parse(field: &str, s: &str) -> Result<Self, Rejection> {
        match s {
            "employee" => Ok(Category::Employee),
            "flexible" => Ok(Category::Flexible),
            "resident" => Ok(Category::Resident),
            "retiree" => Ok(Category::Retiree),
            other => Err(invalid(
                field,
                format!("category '{other}' is not one of employee, flexible, resident, retiree"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Employee => "employee",
            Category::Flexible => "flexible",
            Category::Resident => "resident",
            Category::Retiree => "retiree",
        }
    }

    /// Which insurance types a person of this category may be enrolled in (DOMAIN.md §1-§3):
    /// residents hold resident medical (and resident pension); flexible workers employee
    /// medical and/or pension; retirees keep employee medical and the large-amount premium.
    pub fn allows(self, t: InsuranceType) -> bool {
        use InsuranceType::*;
        match self {
            Category::Employee => t != ResidentMedical,
            Category::Flexible => matches!(t, EmployeeMedical | LargeAmountMedical | Pension),
            Category::Resident => matches!(t, ResidentMedical | Pension),
            Category::Retiree => matches!(t, EmployeeMedical | LargeAmountMedical),
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn id_number(field: &str, s: &str) -> Result<IdNumber, Rejection> {
    IdNumber::parse(s)
        .map_err(|e| ErrorBody::new(ErrorCode::InvalidIdNumber, e.to_string()).with_field(field))
}

pub fn credit_code(field: &str, s: &str) -> Result<CreditCode, Rejection> {
    CreditCode::parse(s)
        .map_err(|e| ErrorBody::new(ErrorCode::InvalidCreditCode, e.to_string()).with_field(field))
}

pub fn phone(field: &str, s: &str) -> Result<Phone, Rejection> {
    Phone::parse(s).map_err(|e| invalid(field, e.to_string()))
}

pub fn month(field: &str, s: &str) -> Result<YearMonth, Rejection> {
    YearMonth::parse(s).map_err(|e| invalid(field, e.to_string()))
}

/// A person's or contact's name: present, at most 100 characters, no control characters.
pub fn name(field: &str, s: &str) -> Result<String, Rejection> {
    let t = s.trim();
    if t.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if t.chars().count() > 100 {
        return Err(invalid(field, "must be at most 100 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}

pub fn reason(field: &str, s: &str) -> Result<String, Rejection> {
    let t = s.trim();
    if t.is_empty() {
        return Err(invalid(field, "a reason is required"));
    }
    if t.chars().count() > 500 {
        return Err(invalid(field, "must be at most 500 characters"));
    }
    Ok(t.to_owned())
}

/// A 6-digit administrative region code (GB/T 2260), checked by the shared type.
pub fn region(field: &str, s: &str) -> Result<String, Rejection> {
    RegionCode::parse(s)
        .map(|r| r.as_str().to_owned())
        .map_err(|e| invalid(field, e.to_string()))
}

/// A bank account number: 12 to 30 digits.
pub fn bank_account(field: &str, s: &str) -> Result<String, Rejection> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if (12..=30).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t)
    } else {
        Err(invalid(field, "a bank account number is 12 to 30 digits"))
    }
}

/// Insurance types of `line`: present, known, of that line, without repeats.
pub fn insurance_types(field: &str, line: Line, raw: &[String]) -> Result<Vec<InsuranceType>, Rejection> {
    if raw.is_empty() {
        return Err(invalid(field, "at least one insurance type is required"));
    }
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        let t: InsuranceType = s.parse().map_err(|e: String| invalid(field, e))?;
        if t.line() != line {
            return Err(invalid(
                field,
                format!(
                    "{t} belongs to the {} line; this command was sent on the {line} line",
                    t.line()
                ),
            ));
        }
        if out.contains(&t) {
            return Err(invalid(field, format!("{t} is listed twice")));
        }
        out.push(t);
    }
    out.sort();
    Ok(out)
}

pub fn check_category(field: &str, category: Category, types: &[InsuranceType]) -> Result<(), Rejection> {
    match types.iter().find(|t| !category.allows(**t)) {
        Some(t) => Err(invalid(
            field,
            format!("a person of category {category} cannot be enrolled in {t}"),
        )),
        None => Ok(()),
    }
}

/// `enroll-person`, validated.
#[derive(Debug)]
pub struct Enrollment {
    pub id_number: IdNumber,
    pub name: String,
    pub phone: Phone,
    pub category: Category,
    pub types: Vec<InsuranceType>,
    pub employer: Option<CreditCode>,
    pub effective_month: YearMonth,
    /// Retirees: whether the minimum contribution years are met (absent: met, as before the
    /// field existed); true for every other category.
    pub minimum_years_met: bool,
}

impl Enrollment {
    pub fn validate(line: Line, cmd: &c::EnrollPerson) -> Result<Self, Rejection> {
        let id_number = id_number("id_number", &cmd.id_number)?;
        let name = name("name", &cmd.name)?;
        let phone = phone("phone", &cmd.phone)?;
        let category = Category::parse("category", &cmd.category)?;
        let types = insurance_types("insurance_types", line, &cmd.insurance_types)?;
        check_category("insurance_types", category, &types)?;
        let employer = match (&cmd.employer_credit_code, category) {
            (Some(code), _) => Some(credit_code("employer_credit_code", code)?),
            (None, Category::Employee) => {
                return Err(invalid("employer_credit_code", "required for an employee"));
            }
            (None, _) => None,
        };
        if employer.is_some() && category != Category::Employee {
            return Err(invalid(
                "employer_credit_code",
                format!("only employees have an employer, not a {category}"),
            ));
        }
        let effective_month = month("effective_month", &cmd.effective_month)?;
        let minimum_years_met = match (cmd.minimum_years_met, category) {
            (Some(met), Category::Retiree) => met,
            (None, _) => true,
            (Some(_), other) => {
                return Err(invalid(
                    "minimum_years_met",
                    format!("only retirees have minimum contribution years to meet, not a {other}"),
                ));
            }
        };
        Ok(Enrollment {
            id_number,
            name,
            phone,
            category,
            types,
            employer,
            effective_month,
            minimum_years_met,
        })
    }
}

/// Insurance types an employer declares staff for: the employee types of the line.
pub fn staff_types(field: &str, line: Line, raw: &[String]) -> Result<Vec<InsuranceType>, Rejection> {
    let types = insurance_types(field, line, raw)?;
    check_category(field, Category::Employee, &types)?;
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enroll(types: &[&str], category: &str, employer: Option<&str>) -> c::EnrollPerson {
        c::EnrollPerson {
            id_number: "11010519491231002X".into(),
            name: "张三".into(),
            phone: "13812345678".into(),
            category: category.into(),
            insurance_types: types.iter().map(|s| s.to_string()).collect(),
            employer_credit_code: employer.map(str::to_owned),
            effective_month: "2024-01".into(),
            minimum_years_met: None,
        }
    }

    #[test]
    fn minimum_years_are_a_retirees_fact() {
        let mut retiree = enroll(&["employee_medical", "large_amount_medical"], "retiree", None);
        assert!(
            Enrollment::validate(Line::Medical, &retiree)
                .unwrap()
                .minimum_years_met
        );
        retiree.minimum_years_met = Some(false);
        assert!(
            !Enrollment::validate(Line::Medical, &retiree)
                .unwrap()
                .minimum_years_met
        );
        let mut flexible = enroll(&["employee_medical"], "flexible", None);
        flexible.minimum_years_met = Some(true);
        let err = Enrollment::validate(Line::Medical, &flexible).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("minimum_years_met"));
    }

    const EMPLOYER: &str = "91350100M000100Y43";

    #[test]
    fn a_valid_enrollment_passes() {
        let e = Enrollment::validate(
            Line::Medical,
            &enroll(
                &["employee_medical", "large_amount_medical"],
                "employee",
                Some(EMPLOYER),
            ),
        )
        .unwrap();
        assert_eq!(
            e.types,
            vec![InsuranceType::EmployeeMedical, InsuranceType::LargeAmountMedical]
        );
        assert_eq!(e.effective_month.to_string(), "2024-01");
    }

    #[test]
    fn every_rejection_names_its_code_and_field() {
        let cases: Vec<(c::EnrollPerson, ErrorCode, &str)> = vec![
            (
                c::EnrollPerson {
                    id_number: "110105194912310021".into(),
                    ..enroll(&["employee_medical"], "flexible", None)
                },
                ErrorCode::InvalidIdNumber,
                "id_number",
            ),
            (
                c::EnrollPerson {
                    id_number: "110105194902300021".into(),
                    ..enroll(&["employee_medical"], "flexible", None)
                },
                ErrorCode::InvalidIdNumber,
                "id_number",
            ),
            (
                c::EnrollPerson {
                    name: " ".into(),
                    ..enroll(&["employee_medical"], "flexible", None)
                },
                ErrorCode::InvalidField,
                "name",
            ),
            (
                c::EnrollPerson {
                    phone: "12345".into(),
                    ..enroll(&["employee_medical"], "flexible", None)
                },
                ErrorCode::InvalidField,
                "phone",
            ),
            (
                enroll(&["employee_medical"], "student", None),
                ErrorCode::InvalidField,
                "category",
            ),
            (
                enroll(&["pension"], "flexible", None),
                ErrorCode::InvalidField,
                "insurance_types",
            ),
            (
                enroll(&[], "flexible", None),
                ErrorCode::InvalidField,
                "insurance_types",
            ),
            (
                enroll(&["dental"], "flexible", None),
                ErrorCode::InvalidField,
                "insurance_types",
            ),
            (
                enroll(&["employee_medical", "employee_medical"], "flexible", None),
                ErrorCode::InvalidField,
                "insurance_types",
            ),
            (
                enroll(&["employee_medical"], "resident", None),
                ErrorCode::InvalidField,
                "insurance_types",
            ),
            (
                enroll(&["employee_medical"], "employee", None),
                ErrorCode::InvalidField,
                "employer_credit_code",
            ),
            (
                enroll(&["employee_medical"], "employee", Some("91350100M000100Y44")),
                ErrorCode::InvalidCreditCode,
                "employer_credit_code",
            ),
            (
                enroll(&["employee_medical"], "flexible", Some(EMPLOYER)),
                ErrorCode::InvalidField,
                "employer_credit_code",
            ),
            (
                c::EnrollPerson {
                    effective_month: "2024-13".into(),
                    ..enroll(&["employee_medical"], "flexible", None)
                },
                ErrorCode::InvalidField,
                "effective_month",
            ),
        ];
        for (cmd, code, field) in cases {
            let err = Enrollment::validate(Line::Medical, &cmd).unwrap_err();
            assert_eq!(
                (err.code, err.field.as_deref()),
                (code, Some(field)),
                "{cmd:?} gave {err}"
            );
        }
    }

    #[test]
    fn categories_allow_the_documented_types() {
        use InsuranceType::*;
        assert!(Category::Retiree.allows(LargeAmountMedical));
        assert!(!Category::Retiree.allows(Unemployment));
        assert!(Category::Flexible.allows(Pension));
        assert!(!Category::Flexible.allows(WorkInjury));
        assert!(Category::Resident.allows(ResidentMedical));
        assert!(!Category::Employee.allows(ResidentMedical));
    }

    #[test]
    fn small_validators() {
        assert_eq!(
            bank_account("b", "6222 0212 3456 7890").unwrap(),
            "6222021234567890"
        );
        assert!(bank_account("b", "12ab").is_err());
        assert!(region("r", "330100").is_ok());
        assert!(region("r", "33010").is_err());
        assert_eq!(reason("r", "").unwrap_err().field.as_deref(), Some("r"));
        assert!(staff_types("t", Line::Medical, &["resident_medical".into()]).is_err());
    }
}

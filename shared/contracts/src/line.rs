//! Lines, channels and insurance types: the coordinates every message is addressed by.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Administrative line. Every queue is per line so that one line can be frozen, drained or
/// replayed while the other keeps flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Line {
    /// 医保, the medical-security bureau.
    Medical,
    /// 社保, the human-resources and social-security bureau.
    Social,
    /// Card issuance and notification serve both lines.
    Common,
}

impl Line {
    pub const ALL: [Line; 3] = [Line::Medical, Line::Social, Line::Common];
    /// The two business lines that insurance types belong to.
    pub const BUSINESS: [Line; 2] = [Line::Medical, Line::Social];

    pub fn as_str(self) -> &'static str {
        match self {
            Line::Medical => "medical",
            Line::Social => "social",
            Line::Common => "common",
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Line {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "medical" => Ok(Line::Medical),
            "social" => Ok(Line::Social),
            "common" => Ok(Line::Common),
            other => Err(format!(
                "unknown line '{other}' (expected medical, social or common)"
            )),
        }
    }
}

/// Channel through which a request arrived (`x-channel` header); each is freezable on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Online,
    Mobile,
    Kiosk,
    Counter,
    Bank,
    Tax,
    Institution,
    DataSharing,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::Mobile => "mobile",
            Channel::Kiosk => "kiosk",
            Channel::Counter => "counter",
            Channel::Bank => "bank",
            Channel::Tax => "tax",
            Channel::Institution => "institution",
            Channel::DataSharing => "data-sharing",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown channel '{s}'"))
    }
}

/// Insurance type. Codes are namespaced by authority (NHSA `insutype` for the medical line,
/// MOHRSS `aae140` for the social line): 410 means different things to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceType {
    /// 职工基本医疗 (NHSA 310, includes maternity 510).
    EmployeeMedical,
    /// 城乡居民医疗 (NHSA 390).
    ResidentMedical,
    /// 大额医疗 (NHSA 330).
    LargeAmountMedical,
    /// 养老 (MOHRSS 110).
    Pension,
    /// 失业 (MOHRSS 210).
    Unemployment,
    /// 工伤 (MOHRSS 410).
    WorkInjury,
}

impl InsuranceType {
    pub const ALL: [InsuranceType; 6] = [
        InsuranceType::EmployeeMedical,
        InsuranceType::ResidentMedical,
        InsuranceType::LargeAmountMedical,
        InsuranceType::Pension,
        InsuranceType::Unemployment,
        InsuranceType::WorkInjury,
    ];

    /// The line that administers this insurance type.
    pub fn line(self) -> Line {
        match self {
            InsuranceType::EmployeeMedical
            | InsuranceType::ResidentMedical
            | InsuranceType::LargeAmountMedical => Line::Medical,
            InsuranceType::Pension | InsuranceType::Unemployment | InsuranceType::WorkInjury => Line::Social,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InsuranceType::EmployeeMedical => "employee_medical",
            InsuranceType::ResidentMedical => "resident_medical",
            InsuranceType::LargeAmountMedical => "large_amount_medical",
            InsuranceType::Pension => "pension",
            InsuranceType::Unemployment => "unemployment",
            InsuranceType::WorkInjury => "work_injury",
        }
    }

    /// The authority's own code: (authority, code).
    pub fn authority_code(self) -> (&'static str, &'static str) {
        match self {
            InsuranceType::EmployeeMedical => ("NHSA", "310"),
            InsuranceType::ResidentMedical => ("NHSA", "390"),
            InsuranceType::LargeAmountMedical => ("NHSA", "330"),
            InsuranceType::Pension => ("MOHRSS", "110"),
            InsuranceType::Unemployment => ("MOHRSS", "210"),
            InsuranceType::WorkInjury => ("MOHRSS", "410"),
        }
    }
}

impl fmt::Display for InsuranceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InsuranceType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InsuranceType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown insurance type '{s}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_insurance_type_round_trips_and_has_a_business_line() {
        for t in InsuranceType::ALL {
            assert_eq!(t.as_str().parse::<InsuranceType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert!(Line::BUSINESS.contains(&t.line()));
        }
        assert_eq!(InsuranceType::WorkInjury.authority_code(), ("MOHRSS", "410"));
    }

    #[test]
    fn channels_and_lines_parse_from_their_wire_names() {
        assert_eq!("data-sharing".parse::<Channel>().unwrap(), Channel::DataSharing);
        assert!("fax".parse::<Channel>().is_err());
        for l in Line::ALL {
            assert_eq!(l.as_str().parse::<Line>().unwrap(), l);
        }
    }
}

//! Parse-don't-validate newtypes for identifiers that cross service boundaries.
//!
//! Every type here can only be obtained through its `parse` constructor (or
//! through `Deserialize`, which goes through `parse`), so holding a value is
//! proof that it is well formed.
//!
//! Identifiers that are personal data ([`IdNumber`], [`Phone`]) and
//! [`CreditCode`] mask their value in both `Display` and `Debug`, so they can be
//! put into log lines and error messages without leaking. The full value is
//! only available through `as_str()` and through `Serialize`, which is the wire
//! form. [`YearMonth`] is not personal data and is displayed as is.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Local, Months, NaiveDate};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, Serializer};

/// Replaces every character of `s` except the first `keep_start` and the last
/// `keep_end` characters with `*`.
///
/// Works on `char`s, not bytes. If `s` has no more than `keep_start + keep_end`
/// characters, nothing would be hidden, so the whole string is masked instead
/// (the result has as many `*` as `s` has characters).
///
/// ```text
/// mask_middle("13812345678", 3, 4) == "138****5678"
/// mask_middle("abc", 2, 2)         == "***"
/// ```
#[must_use]
pub fn mask_middle(s: &str, keep_start: usize, keep_end: usize) -> String {
    let len = s.chars().count();
    if len <= keep_start.saturating_add(keep_end) {
        return "*".repeat(len);
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i >= len - keep_end {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// `Serialize` as the full string, `FromStr` and `TryFrom<String>` through
/// `parse`.
macro_rules! string_conversions {
    ($ty:ident, $err:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $err;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $err;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
    };
}

/// A plain string JSON schema with a pattern and a description.
macro_rules! string_schema {
    ($ty:ident, $pattern:expr, $description:expr) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }

            fn schema_id() -> Cow<'static, str> {
                Cow::Borrowed(concat!(module_path!(), "::", stringify!($ty)))
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $description,
                })
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Resident ID number (GB 11643-1999)
// ---------------------------------------------------------------------------

/// Weights of the first 17 digits of a resident ID number (ISO 7064 MOD 11-2).
const ID_NUMBER_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character indexed by the weighted sum mod 11.
const ID_NUMBER_CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
const ID_NUMBER_LEN: usize = 18;
const EARLIEST_BIRTH_YEAR: i32 = 1900;

/// Why a string is not a valid resident ID number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("a resident ID number must be exactly 18 characters long, but {len} were given")]
    WrongLength { len: usize },
    #[error(
        "characters 1 to 17 of a resident ID number must all be digits 0-9 \
         (only the 18th, the check character, may be X)"
    )]
    NotDigits,
    /// Carries the eight `YYYYMMDD` digits (characters 7-14).
    #[error(
        "the birth date {0} (characters 7-14, YYYYMMDD) is impossible: {reason}",
        reason = birth_date_problem(.0)
    )]
    ImpossibleBirthDate(String),
    #[error(
        "the check character (18th character) should be '{expected}' but is '{found}'; \
         the number was probably mistyped"
    )]
    WrongCheckCharacter { expected: char, found: char },
}

/// Human-readable reason why the eight `YYYYMMDD` digits are not a possible
/// birth date (used by the `ImpossibleBirthDate` message).
fn birth_date_problem(digits: &str) -> &'static str {
    match parse_yyyymmdd(digits) {
        None => "it is not a real calendar date",
        Some(date) if date.year() < EARLIEST_BIRTH_YEAR => "it is before 1900-01-01",
        Some(date) if date > Local::now().date_naive() => "it is in the future",
        Some(_) => "it is outside the accepted range",
    }
}

/// Parses eight ASCII digits `YYYYMMDD` into a date, `None` if they are not
/// digits or not a real calendar date.
fn parse_yyyymmdd(digits: &str) -> Option<NaiveDate> {
    let bytes = digits.as_bytes();
    if bytes.len() != 8 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year = ascii_digits_value(&bytes[0..4]);
    let month = ascii_digits_value(&bytes[4..6]);
    let day = ascii_digits_value(&bytes[6..8]);
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// Numeric value of a run of ASCII digits (caller guarantees they are digits).
fn ascii_digits_value(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
}

/// An 18-character resident ID number (居民身份证号码) per GB 11643-1999:
/// 6-digit region code, 8-digit birth date `YYYYMMDD`, 3-digit sequence number
/// and a check character (`0`-`9` or `X`, ISO 7064 MOD 11-2).
///
/// Stored normalised: surrounding whitespace trimmed, a lowercase `x` check
/// character turned into `X`.
///
/// `Display` and `Debug` mask the value (`1101**********002X`); `as_str()` and
/// `Serialize` give the full value.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct IdNumber {
    value: String,
    birth_date: NaiveDate,
}

impl IdNumber {
    /// Parses and validates a resident ID number.
    ///
    /// Checks, in order: the length (18 characters after trimming), that the
    /// first 17 characters are digits, that characters 7-14 are a real birth
    /// date between 1900-01-01 and today (local time), and the check character.
    ///
    /// # Errors
    ///
    /// The first failed check, as the matching [`IdNumberError`] variant.
    pub fn parse(input: &str) -> Result<Self, IdNumberError> {
        let trimmed = input.trim();
        let len = trimmed.chars().count();
        if len != ID_NUMBER_LEN {
            return Err(IdNumberError::WrongLength { len });
        }
        let mut chars = trimmed.chars();
        let body: String = chars.by_ref().take(ID_NUMBER_LEN - 1).collect();
        if !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdNumberError::NotDigits);
        }
        let found = chars
            .next()
            .ok_or(IdNumberError::WrongLength { len })?
            .to_ascii_uppercase();

        let birth_digits = &body[6..14];
        let birth_date = parse_yyyymmdd(birth_digits)
            .filter(|date| date.year() >= EARLIEST_BIRTH_YEAR && *date <= Local::now().date_naive())
            .ok_or_else(|| IdNumberError::ImpossibleBirthDate(birth_digits.to_owned()))?;

        let expected = id_number_check_char(&body);
        if found != expected {
            return Err(IdNumberError::WrongCheckCharacter { expected, found });
        }

        let mut value = body;
        value.push(found);
        Ok(Self { value, birth_date })
    }

    /// The full, unmasked, normalised value. Do not log it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The birth date encoded in characters 7-14.
    #[must_use]
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// The 6-digit administrative region code (characters 1-6).
    #[must_use]
    pub fn region_code(&self) -> &str {
        &self.value[..6]
    }

    /// First 4 and last 4 characters, the middle 10 replaced with `*`:
    /// `4201**********123X`.
    #[must_use]
    pub fn masked(&self) -> String {
        mask_middle(&self.value, 4, 4)
    }
}

/// Check character for 17 ASCII digits (caller guarantees they are digits).
fn id_number_check_char(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .zip(ID_NUMBER_WEIGHTS)
        .map(|(b, weight)| u32::from(b - b'0') * weight)
        .sum();
    // `sum % 11` is always < 11, the length of the table.
    ID_NUMBER_CHECK_CHARS[(sum % 11) as usize]
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdNumber").field(&self.masked()).finish()
    }
}

string_conversions!(IdNumber, IdNumberError);
string_schema!(
    IdNumber,
    "^[0-9]{17}[0-9Xx]$",
    "18-character resident ID number (GB 11643-1999): 6-digit region code, birth date \
     YYYYMMDD, 3-digit sequence number and an ISO 7064 MOD 11-2 check character (0-9 or X). \
     Personal data."
);

// ---------------------------------------------------------------------------
// Unified social credit code (GB 32100-2015)
// ---------------------------------------------------------------------------

/// The 31 characters allowed in a unified social credit code; a character's
/// value is its index.
const CREDIT_CODE_ALPHABET: [char; 31] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L',
    'M', 'N', 'P', 'Q', 'R', 'T', 'U', 'W', 'X', 'Y',
];
/// Weights of the first 17 characters of a unified social credit code.
const CREDIT_CODE_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const CREDIT_CODE_LEN: usize = 18;

/// Why a string is not a valid unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("a unified social credit code must be exactly 18 characters long, but {len} were given")]
    WrongLength { len: usize },
    /// `position` is 1-based.
    #[error(
        "character '{character}' at position {position} is not allowed in a unified social \
         credit code; expected a digit 0-9 or a letter A-Y other than I, O, S, V and Z"
    )]
    InvalidCharacter { position: usize, character: char },
    #[error(
        "the check character (18th character) should be '{expected}' but is '{found}'; \
         the code was probably mistyped"
    )]
    WrongCheckCharacter { expected: char, found: char },
}

/// An 18-character unified social credit code (统一社会信用代码) per
/// GB 32100-2015.
///
/// Only the length, the alphabet and the check character are validated; the
/// registration authority and organisation type codes are not. Stored
/// normalised: trimmed and uppercased.
///
/// `Display` and `Debug` mask the value (`913501********0Y43`); `as_str()` and
/// `Serialize` give the full value.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CreditCode(String);

impl CreditCode {
    /// Parses and validates a unified social credit code.
    ///
    /// # Errors
    ///
    /// [`CreditCodeError::WrongLength`] unless there are 18 characters after
    /// trimming, [`CreditCodeError::InvalidCharacter`] for the first character
    /// outside the alphabet, [`CreditCodeError::WrongCheckCharacter`] if the
    /// 18th character does not match the other 17.
    pub fn parse(input: &str) -> Result<Self, CreditCodeError> {
        let normalised = input.trim().to_ascii_uppercase();
        let len = normalised.chars().count();
        if len != CREDIT_CODE_LEN {
            return Err(CreditCodeError::WrongLength { len });
        }
        let mut values = [0_u32; CREDIT_CODE_LEN];
        for (slot, (index, character)) in values.iter_mut().zip(normalised.chars().enumerate()) {
            *slot = credit_code_value(character).ok_or(CreditCodeError::InvalidCharacter {
                position: index + 1,
                character,
            })?;
        }

        let (body, check) = values.split_at(CREDIT_CODE_LEN - 1);
        let expected = credit_code_check_char(body);
        let found = check
            .first()
            .and_then(|&value| credit_code_char(value))
            .ok_or(CreditCodeError::WrongLength { len })?;
        if found != expected {
            return Err(CreditCodeError::WrongCheckCharacter { expected, found });
        }
        Ok(Self(normalised))
    }

    /// The full, unmasked, normalised value.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 6 and last 4 characters, the middle 8 replaced with `*`:
    /// `913501********0Y43`.
    #[must_use]
    pub fn masked(&self) -> String {
        mask_middle(&self.0, 6, 4)
    }
}

/// Value (index in the alphabet) of a credit code character.
fn credit_code_value(character: char) -> Option<u32> {
    CREDIT_CODE_ALPHABET
        .iter()
        .position(|&c| c == character)
        .and_then(|index| u32::try_from(index).ok())
}

/// Credit code character of a value.
fn credit_code_char(value: u32) -> Option<char> {
    CREDIT_CODE_ALPHABET.get(usize::try_from(value).ok()?).copied()
}

/// Check character for the values of the first 17 characters.
fn credit_code_check_char(body: &[u32]) -> char {
    let sum: u32 = body
        .iter()
        .zip(CREDIT_CODE_WEIGHTS)
        .map(|(value, weight)| value * weight)
        .sum();
    // 31 - (sum mod 31), where 31 wraps to 0; always < 31, the alphabet size.
    let check = (31 - sum % 31) % 31;
    CREDIT_CODE_ALPHABET[check as usize]
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CreditCode").field(&self.masked()).finish()
    }
}

string_conversions!(CreditCode, CreditCodeError);
string_schema!(
    CreditCode,
    "^[0-9A-HJ-NPQRTUWXY]{18}$",
    "18-character unified social credit code (GB 32100-2015): digits and uppercase letters \
     except I, O, S, V and Z; the 18th character is a MOD 31 check character."
);

// ---------------------------------------------------------------------------
// Mainland mobile phone number
// ---------------------------------------------------------------------------

/// Why a string is not a valid mainland mobile number; carries the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("invalid mobile phone number: {0}")]
    Invalid(String),
}

/// A mainland China mobile number: 11 digits, starting with `1`, second digit
/// `3`-`9`. A leading `+86` (optionally followed by spaces) is accepted and
/// stripped; the stored value is the 11 digits.
///
/// `Display` and `Debug` mask the value (`138****5678`); `as_str()` and
/// `Serialize` give the full value.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Phone(String);

const PHONE_LEN: usize = 11;

impl Phone {
    /// Parses and validates a mainland mobile number.
    ///
    /// # Errors
    ///
    /// [`PhoneError::Invalid`] with the reason (empty, non-digit character,
    /// wrong number of digits, wrong first or second digit).
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        let number = trimmed.strip_prefix("+86").map_or(trimmed, str::trim_start);
        let invalid = |reason: String| Err(PhoneError::Invalid(reason));

        if number.is_empty() {
            return invalid("the number is empty; expected 11 digits starting with 1".to_owned());
        }
        if let Some((index, character)) = number.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return invalid(format!(
                "character '{character}' at position {} (not counting a +86 prefix) is not a \
                 digit; expected 11 digits without spaces or dashes",
                index + 1
            ));
        }
        // All ASCII digits from here on, so bytes are characters.
        let digits = number.as_bytes();
        if digits.len() != PHONE_LEN {
            return invalid(format!(
                "expected 11 digits (not counting a +86 prefix), but {} were given",
                digits.len()
            ));
        }
        if digits[0] != b'1' {
            return invalid(format!(
                "a mobile number must start with 1, but it starts with {}",
                char::from(digits[0])
            ));
        }
        if !(b'3'..=b'9').contains(&digits[1]) {
            return invalid(format!(
                "the second digit of a mobile number must be 3-9, but it is {}",
                char::from(digits[1])
            ));
        }
        Ok(Self(number.to_owned()))
    }

    /// The full 11 digits, without any `+86` prefix. Do not log it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 3 and last 4 digits, the middle 4 replaced with `*`: `138****5678`.
    #[must_use]
    pub fn masked(&self) -> String {
        mask_middle(&self.0, 3, 4)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&self.masked()).finish()
    }
}

string_conversions!(Phone, PhoneError);
string_schema!(
    Phone,
    "^(\\+86)?1[3-9][0-9]{9}$",
    "Mainland China mobile number: 11 digits starting with 1 and a second digit 3-9, \
     optionally prefixed with +86 (serialised without the prefix). Personal data."
);

// ---------------------------------------------------------------------------
// Year and month
// ---------------------------------------------------------------------------

const MIN_YEAR: i32 = 1900;
const MAX_YEAR: i32 = 2200;

/// Why a string is not a valid `YYYY-MM`; carries the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YearMonthError {
    #[error("invalid year and month: {0}")]
    Invalid(String),
}

/// A calendar month, written `YYYY-MM` (year 1900-2200, month 01-12).
///
/// Not personal data: `Display` and `Debug` show the value. Ordered
/// chronologically.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct YearMonth {
    /// Always the first day of the month, with the year in range.
    first_day: NaiveDate,
}

impl YearMonth {
    /// Parses `YYYY-MM` (exactly four year digits, a dash, two month digits;
    /// surrounding whitespace is ignored).
    ///
    /// # Errors
    ///
    /// [`YearMonthError::Invalid`] with the reason if the form, year or month
    /// is wrong.
    pub fn parse(input: &str) -> Result<Self, YearMonthError> {
        let trimmed = input.trim();
        let bytes = trimmed.as_bytes();
        let well_formed = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[5..].iter().all(u8::is_ascii_digit);
        if !well_formed {
            return Err(YearMonthError::Invalid(format!(
                "expected the form YYYY-MM with a two-digit month, e.g. 2024-03, but got {trimmed:?}"
            )));
        }
        let year = ascii_digits_value(&bytes[..4]);
        let month = ascii_digits_value(&bytes[5..]);
        let year = i32::try_from(year).map_err(|_| year_out_of_range(year))?;
        Self::new(year, month)
    }

    /// The month `month` (1-12) of `year` (1900-2200).
    ///
    /// # Errors
    ///
    /// [`YearMonthError::Invalid`] if the year or month is out of range.
    pub fn new(year: i32, month: u32) -> Result<Self, YearMonthError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(year_out_of_range(year));
        }
        NaiveDate::from_ymd_opt(year, month, 1)
            .map(|first_day| Self { first_day })
            .ok_or_else(|| YearMonthError::Invalid(format!("month {month:02} is not between 01 and 12")))
    }

    /// 1900-2200.
    #[must_use]
    pub fn year(self) -> i32 {
        self.first_day.year()
    }

    /// 1-12.
    #[must_use]
    pub fn month(self) -> u32 {
        self.first_day.month()
    }

    /// The first day of the month.
    #[must_use]
    pub fn first_day(self) -> NaiveDate {
        self.first_day
    }

    /// The following month, `None` after 2200-12.
    #[must_use]
    pub fn next(self) -> Option<Self> {
        self.first_day
            .checked_add_months(Months::new(1))
            .filter(|date| date.year() <= MAX_YEAR)
            .map(|first_day| Self { first_day })
    }

    /// The preceding month, `None` before 1900-01.
    #[must_use]
    pub fn prev(self) -> Option<Self> {
        self.first_day
            .checked_sub_months(Months::new(1))
            .filter(|date| date.year() >= MIN_YEAR)
            .map(|first_day| Self { first_day })
    }

    /// `YYYY-MM`; the same as `to_string()`, provided for symmetry with the
    /// other identifiers.
    #[must_use]
    pub fn as_string(self) -> String {
        self.to_string()
    }
}

fn year_out_of_range(year: impl fmt::Display) -> YearMonthError {
    YearMonthError::Invalid(format!(
        "year {year} is outside the supported range {MIN_YEAR}-{MAX_YEAR}"
    ))
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YearMonth({self})")
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for YearMonth {
    type Err = YearMonthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for YearMonth {
    type Error = YearMonthError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl TryFrom<&str> for YearMonth {
    type Error = YearMonthError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

string_schema!(
    YearMonth,
    "^[0-9]{4}-(0[1-9]|1[0-2])$",
    "Calendar month as YYYY-MM (year 1900-2200, month 01-12)."
);

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Why a text is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error(
        "a region code is the 6-digit administrative division code (GB/T 2260), e.g. 420100 \
         for Wuhan, but {0:?} was given"
    )]
    Invalid(String),
}

/// A 6-digit administrative division code (行政区划代码, GB/T 2260): `420100` Wuhan,
/// `330100` Hangzhou, `370100` Jinan, `150200` Baotou. The same code as characters 1-6 of a
/// resident ID number, so a person's region can be compared with a policy row directly.
///
/// In YAML write it quoted (`"420100"`): unquoted it is a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl RegionCode {
    /// # Errors
    ///
    /// [`RegionCodeError::Invalid`] unless the text (trimmed) is exactly 6 ASCII digits.
    pub fn parse(input: &str) -> Result<Self, RegionCodeError> {
        let trimmed = input.trim();
        if trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(RegionCodeError::Invalid(input.to_owned()))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionCodeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RegionCode> for String {
    fn from(value: RegionCode) -> String {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // -- independent reference implementations used to build test vectors --

    /// GB 11643 check character, written independently of the production code:
    /// the weight of position i (counted from the right, check char = 1) is
    /// 2^(i-1) mod 11, and the check value is (12 - sum mod 11) mod 11.
    fn id_check(body: &str) -> char {
        assert_eq!(body.len(), 17, "test helper needs 17 digits: {body}");
        let mut sum = 0_u64;
        for (i, c) in body.chars().enumerate() {
            let position_from_right = 18 - i as u32; // 18..=2
            let weight = 2_u64.pow(position_from_right - 1) % 11;
            sum += u64::from(c.to_digit(10).expect("digit")) * weight;
        }
        match (12 - sum % 11) % 11 {
            10 => 'X',
            v => char::from_digit(v as u32, 10).expect("digit"),
        }
    }

    fn id_with_check(body: &str) -> String {
        format!("{body}{}", id_check(body))
    }

    const ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

    /// GB 32100 check character, written independently: weight of position i
    /// (1-based from the left) is 3^(i-1) mod 31.
    fn credit_check(body: &str) -> char {
        assert_eq!(body.chars().count(), 17, "test helper needs 17 chars: {body}");
        let mut sum = 0_u64;
        for (i, c) in body.chars().enumerate() {
            let value = ALPHABET.find(c).expect("alphabet char") as u64;
            let weight = 3_u64.pow(i as u32) % 31;
            sum += value * weight;
        }
        let check = (31 - sum % 31) % 31;
        ALPHABET.chars().nth(check as usize).expect("in alphabet")
    }

    fn credit_with_check(body: &str) -> String {
        format!("{body}{}", credit_check(body))
    }

    /// Deterministic 64-bit LCG (Knuth's MMIX constants).
    struct Lcg(u64);

    impl Lcg {
        fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        fn below(&mut self, n: u32) -> u32 {
            self.next_u32() % n
        }
    }

    #[test]
    fn reference_helpers_agree_with_published_vectors() {
        assert_eq!(id_check("11010519491231002"), 'X');
        assert_eq!(id_check("44052418800101001"), '4');
        assert_eq!(credit_check("91350100M000100Y4"), '3');
    }

    // -- mask_middle --

    #[test]
    fn mask_middle_cases() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("13812345678", 3, 4, "138****5678"),
            ("abcdef", 1, 1, "a****f"),
            ("abcdef", 0, 0, "******"),
            ("abcdef", 0, 2, "****ef"),
            ("abcdef", 2, 0, "ab****"),
            ("abcde", 2, 2, "ab*de"),
            // too short: nothing would be hidden, so everything is
            ("abcd", 2, 2, "****"),
            ("abc", 2, 2, "***"),
            ("", 2, 2, ""),
            ("abc", usize::MAX, usize::MAX, "***"),
            // chars, not bytes
            ("张三丰", 1, 1, "张*丰"),
            ("张三", 1, 1, "**"),
        ];
        for &(input, start, end, expected) in cases {
            assert_eq!(
                mask_middle(input, start, end),
                expected,
                "mask_middle({input:?}, {start}, {end})"
            );
        }
    }

    // -- IdNumber --

    #[test]
    fn id_number_valid_cases() {
        let leap_day = id_with_check("11010520000229123");
        let lowercase = "11010519491231002x".to_owned();
        let cases: Vec<(String, &str, NaiveDate)> = vec![
            (
                "11010519491231002X".into(),
                "11010519491231002X",
                NaiveDate::from_ymd_opt(1949, 12, 31).unwrap(),
            ),
            (
                leap_day.clone(),
                leap_day.as_str(),
                NaiveDate::from_ymd_opt(2000, 2, 29).unwrap(),
            ),
            (
                lowercase,
                "11010519491231002X",
                NaiveDate::from_ymd_opt(1949, 12, 31).unwrap(),
            ),
            (
                " \t11010519491231002X\n".into(),
                "11010519491231002X",
                NaiveDate::from_ymd_opt(1949, 12, 31).unwrap(),
            ),
            (
                id_with_check("42010119000101000"),
                "",
                NaiveDate::from_ymd_opt(1900, 1, 1).unwrap(),
            ),
            (
                id_with_check(&format!(
                    "420101{}000",
                    Local::now().date_naive().format("%Y%m%d")
                )),
                "",
                Local::now().date_naive(),
            ),
        ];
        for (input, normalised, birth_date) in cases {
            let id =
                IdNumber::parse(&input).unwrap_or_else(|e| panic!("{input:?} should be valid, got {e:?}"));
            if !normalised.is_empty() {
                assert_eq!(id.as_str(), normalised, "{input:?}");
            }
            assert_eq!(id.birth_date(), birth_date, "{input:?}");
        }
    }

    #[test]
    fn id_number_1880_birth_date_is_before_1900() {
        // The commonly cited example 440524188001010014 has a correct check
        // character but a birth year before the accepted range.
        assert_eq!(
            IdNumber::parse("440524188001010014"),
            Err(IdNumberError::ImpossibleBirthDate("18800101".into()))
        );
    }

    #[test]
    fn id_number_error_cases() {
        use IdNumberError::*;
        let tomorrow = Local::now().date_naive().succ_opt().unwrap();
        let tomorrow_digits = tomorrow.format("%Y%m%d").to_string();
        let cases: Vec<(String, IdNumberError)> = vec![
            // length
            ("".into(), WrongLength { len: 0 }),
            ("   ".into(), WrongLength { len: 0 }),
            ("11010519491231002".into(), WrongLength { len: 17 }),
            ("11010519491231002X1".into(), WrongLength { len: 19 }),
            ("110105194912310021X".into(), WrongLength { len: 19 }),
            ("一".into(), WrongLength { len: 1 }),
            ("一1010519491231002".into(), WrongLength { len: 17 }),
            // letters / non-digits in the body
            ("1101051949123100AX".into(), NotDigits),
            ("A1010519491231002X".into(), NotDigits),
            ("11010519491231 02X".into(), NotDigits),
            ("1101051949-231002X".into(), NotDigits),
            ("一1010519491231002X".into(), NotDigits),
            ("１１０１０５１９４９１２３１００２Ｘ".into(), NotDigits),
            // impossible birth dates, each with a correct check character
            (
                id_with_check("11010519000229123"),
                ImpossibleBirthDate("19000229".into()),
            ),
            (
                id_with_check("11010519490230123"),
                ImpossibleBirthDate("19490230".into()),
            ),
            (
                id_with_check("11010519491301123"),
                ImpossibleBirthDate("19491301".into()),
            ),
            (
                id_with_check("11010519491200123"),
                ImpossibleBirthDate("19491200".into()),
            ),
            (
                id_with_check("11010519490001123"),
                ImpossibleBirthDate("19490001".into()),
            ),
            (
                id_with_check("11010518991231123"),
                ImpossibleBirthDate("18991231".into()),
            ),
            (
                id_with_check(&format!("110105{tomorrow_digits}123")),
                ImpossibleBirthDate(tomorrow_digits.clone()),
            ),
            (
                id_with_check("11010599990101123"),
                ImpossibleBirthDate("99990101".into()),
            ),
            // check character
            (
                "110105194912310021".into(),
                WrongCheckCharacter {
                    expected: 'X',
                    found: '1',
                },
            ),
            (
                "440524198001010015".into(),
                WrongCheckCharacter {
                    expected: id_check("44052419800101001"),
                    found: '5',
                },
            ),
            (
                "44052419800101001A".into(),
                WrongCheckCharacter {
                    expected: id_check("44052419800101001"),
                    found: 'A',
                },
            ),
            (
                "44052419800101001x".into(),
                WrongCheckCharacter {
                    expected: id_check("44052419800101001"),
                    found: 'X',
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(IdNumber::parse(&input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn id_number_error_messages_are_specific() {
        let cases: Vec<(IdNumberError, &str)> = vec![
            (
                IdNumberError::WrongLength { len: 17 },
                "a resident ID number must be exactly 18 characters long, but 17 were given",
            ),
            (
                IdNumberError::NotDigits,
                "characters 1 to 17 of a resident ID number must all be digits 0-9 \
                 (only the 18th, the check character, may be X)",
            ),
            (
                IdNumberError::ImpossibleBirthDate("19490230".into()),
                "the birth date 19490230 (characters 7-14, YYYYMMDD) is impossible: \
                 it is not a real calendar date",
            ),
            (
                IdNumberError::ImpossibleBirthDate("18991231".into()),
                "the birth date 18991231 (characters 7-14, YYYYMMDD) is impossible: \
                 it is before 1900-01-01",
            ),
            (
                IdNumberError::ImpossibleBirthDate("99990101".into()),
                "the birth date 99990101 (characters 7-14, YYYYMMDD) is impossible: \
                 it is in the future",
            ),
            (
                IdNumberError::WrongCheckCharacter {
                    expected: 'X',
                    found: '1',
                },
                "the check character (18th character) should be 'X' but is '1'; \
                 the number was probably mistyped",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn id_number_accessors_and_masking() {
        let id = IdNumber::parse("11010519491231002x").unwrap();
        assert_eq!(id.region_code(), "110105");
        assert_eq!(id.masked(), "1101**********002X");
        assert_eq!(id.to_string(), "1101**********002X");
        assert_eq!(format!("{id:?}"), r#"IdNumber("1101**********002X")"#);
        assert_eq!(format!("{:#?}", Some(&id)).matches("19491231").count(), 0);
        assert_eq!(id, "11010519491231002X".parse::<IdNumber>().unwrap());
    }

    #[test]
    fn id_number_serde_uses_full_value_and_validates() {
        let id = IdNumber::parse(" 11010519491231002x ").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""11010519491231002X""#);
        let back: IdNumber = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        let lower: IdNumber = serde_json::from_str(r#""11010519491231002x""#).unwrap();
        assert_eq!(lower, id);

        let err = serde_json::from_str::<IdNumber>(r#""110105194912310021""#).unwrap_err();
        assert!(err.to_string().contains("should be 'X' but is '1'"), "{err}");
        assert!(!err.to_string().contains("110105194912310021"), "{err}");
        assert!(serde_json::from_str::<IdNumber>("12345").is_err());
    }

    #[test]
    fn id_number_property_check_character() {
        let mut rng = Lcg(0x1D_C0DE);
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        let span = (Local::now().date_naive() - earliest).num_days() as u32 + 1;
        let mut saw_x = false;
        for _ in 0..2000 {
            let region = rng.below(1_000_000);
            let birth = earliest + chrono::Days::new(u64::from(rng.below(span)));
            let sequence = rng.below(1000);
            let body = format!("{region:06}{}{sequence:03}", birth.format("%Y%m%d"));
            let check = id_check(&body);
            saw_x |= check == 'X';

            let valid = format!("{body}{check}");
            let id = IdNumber::parse(&valid).unwrap_or_else(|e| panic!("{valid} should be valid: {e:?}"));
            assert_eq!(id.as_str(), valid);
            assert_eq!(id.birth_date(), birth);
            assert_eq!(id.region_code(), &valid[..6]);

            for wrong in "0123456789X".chars().filter(|&c| c != check) {
                assert_eq!(
                    IdNumber::parse(&format!("{body}{wrong}")),
                    Err(IdNumberError::WrongCheckCharacter {
                        expected: check,
                        found: wrong
                    }),
                    "{body}{wrong}"
                );
            }
        }
        assert!(saw_x, "the generator should hit the X check character");
    }

    // -- CreditCode --

    #[test]
    fn credit_code_valid_cases() {
        let generated = credit_with_check("91110000MA01ABCDE");
        let cases: Vec<(String, String)> = vec![
            ("91350100M000100Y43".into(), "91350100M000100Y43".into()),
            ("91350100m000100y43".into(), "91350100M000100Y43".into()),
            ("  91350100M000100Y43\n".into(), "91350100M000100Y43".into()),
            (generated.clone(), generated),
            (
                credit_with_check("00000000000000000"),
                "000000000000000000".into(),
            ),
            (
                credit_with_check("YYYYYYYYYYYYYYYYY"),
                credit_with_check("YYYYYYYYYYYYYYYYY"),
            ),
        ];
        for (input, normalised) in cases {
            let code =
                CreditCode::parse(&input).unwrap_or_else(|e| panic!("{input:?} should be valid, got {e:?}"));
            assert_eq!(code.as_str(), normalised, "{input:?}");
        }
    }

    #[test]
    fn credit_code_error_cases() {
        use CreditCodeError::*;
        let cases: Vec<(&str, CreditCodeError)> = vec![
            ("", WrongLength { len: 0 }),
            ("91350100M000100Y4", WrongLength { len: 17 }),
            ("91350100M000100Y433", WrongLength { len: 19 }),
            (
                "91350100I000100Y43",
                InvalidCharacter {
                    position: 9,
                    character: 'I',
                },
            ),
            (
                "O1350100M000100Y43",
                InvalidCharacter {
                    position: 1,
                    character: 'O',
                },
            ),
            (
                "91350100M000100S43",
                InvalidCharacter {
                    position: 16,
                    character: 'S',
                },
            ),
            (
                "91350100M000100Y4V",
                InvalidCharacter {
                    position: 18,
                    character: 'V',
                },
            ),
            (
                "9135010ZM000100Y43",
                InvalidCharacter {
                    position: 8,
                    character: 'Z',
                },
            ),
            // lowercase is uppercased before the alphabet check
            (
                "91350100i000100Y43",
                InvalidCharacter {
                    position: 9,
                    character: 'I',
                },
            ),
            (
                "913501-0M000100Y43",
                InvalidCharacter {
                    position: 7,
                    character: '-',
                },
            ),
            (
                "91350100M000100Y 3",
                InvalidCharacter {
                    position: 17,
                    character: ' ',
                },
            ),
            (
                "913501中0M000100Y43",
                InvalidCharacter {
                    position: 7,
                    character: '中',
                },
            ),
            (
                "91350100M000100Y44",
                WrongCheckCharacter {
                    expected: '3',
                    found: '4',
                },
            ),
            (
                "91350100M000100Y4Y",
                WrongCheckCharacter {
                    expected: '3',
                    found: 'Y',
                },
            ),
            (
                "91350100M000101Y43",
                WrongCheckCharacter {
                    expected: credit_check("91350100M000101Y4"),
                    found: '3',
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(CreditCode::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn credit_code_error_messages_are_specific() {
        let cases: Vec<(CreditCodeError, &str)> = vec![
            (
                CreditCodeError::WrongLength { len: 19 },
                "a unified social credit code must be exactly 18 characters long, but 19 were given",
            ),
            (
                CreditCodeError::InvalidCharacter {
                    position: 9,
                    character: 'I',
                },
                "character 'I' at position 9 is not allowed in a unified social credit code; \
                 expected a digit 0-9 or a letter A-Y other than I, O, S, V and Z",
            ),
            (
                CreditCodeError::WrongCheckCharacter {
                    expected: '3',
                    found: '4',
                },
                "the check character (18th character) should be '3' but is '4'; \
                 the code was probably mistyped",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn credit_code_masking_and_serde() {
        let code = CreditCode::parse("91350100m000100y43").unwrap();
        assert_eq!(code.masked(), "913501********0Y43");
        assert_eq!(code.to_string(), "913501********0Y43");
        assert_eq!(format!("{code:?}"), r#"CreditCode("913501********0Y43")"#);

        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, r#""91350100M000100Y43""#);
        assert_eq!(serde_json::from_str::<CreditCode>(&json).unwrap(), code);
        let err = serde_json::from_str::<CreditCode>(r#""91350100M000100Y44""#).unwrap_err();
        assert!(err.to_string().contains("should be '3' but is '4'"), "{err}");
    }

    #[test]
    fn credit_code_property_check_character() {
        let alphabet: Vec<char> = ALPHABET.chars().collect();
        let mut rng = Lcg(0xC0_FFEE);
        let mut saw_zero_check = false;
        for _ in 0..2000 {
            let body: String = (0..17).map(|_| alphabet[rng.below(31) as usize]).collect();
            let check = credit_check(&body);
            saw_zero_check |= check == '0';

            let valid = format!("{body}{check}");
            let code = CreditCode::parse(&valid).unwrap_or_else(|e| panic!("{valid} should be valid: {e:?}"));
            assert_eq!(code.as_str(), valid);
            assert_eq!(CreditCode::parse(&valid.to_ascii_lowercase()).as_ref(), Ok(&code));

            for &wrong in alphabet.iter().filter(|&&c| c != check) {
                assert_eq!(
                    CreditCode::parse(&format!("{body}{wrong}")),
                    Err(CreditCodeError::WrongCheckCharacter {
                        expected: check,
                        found: wrong
                    }),
                    "{body}{wrong}"
                );
            }
        }
        assert!(saw_zero_check, "the generator should hit the c == 31 -> '0' case");
    }

    // -- Phone --

    #[test]
    fn phone_valid_cases() {
        let cases: &[(&str, &str)] = &[
            ("13812345678", "13812345678"),
            ("19912345678", "19912345678"),
            ("+8613812345678", "13812345678"),
            ("+86 13812345678", "13812345678"),
            ("  15012345678\n", "15012345678"),
        ];
        for &(input, normalised) in cases {
            let phone =
                Phone::parse(input).unwrap_or_else(|e| panic!("{input:?} should be valid, got {e:?}"));
            assert_eq!(phone.as_str(), normalised, "{input:?}");
        }
    }

    #[test]
    fn phone_error_cases() {
        let not_digit = |c: char, position: usize| {
            format!(
                "character '{c}' at position {position} (not counting a +86 prefix) is not a \
                 digit; expected 11 digits without spaces or dashes"
            )
        };
        let wrong_len =
            |n: usize| format!("expected 11 digits (not counting a +86 prefix), but {n} were given");
        let cases: Vec<(&str, String)> = vec![
            (
                "",
                "the number is empty; expected 11 digits starting with 1".into(),
            ),
            (
                "+86",
                "the number is empty; expected 11 digits starting with 1".into(),
            ),
            ("1381234567", wrong_len(10)),
            ("138123456789", wrong_len(12)),
            ("8613812345678", wrong_len(13)),
            ("138-1234-5678", not_digit('-', 4)),
            ("138 1234 5678", not_digit(' ', 4)),
            ("1381234567a", not_digit('a', 11)),
            ("+85213812345678", not_digit('+', 1)),
            ("+86+8613812345678", not_digit('+', 1)),
            (
                "23812345678",
                "a mobile number must start with 1, but it starts with 2".into(),
            ),
            (
                "12812345678",
                "the second digit of a mobile number must be 3-9, but it is 2".into(),
            ),
            (
                "10812345678",
                "the second digit of a mobile number must be 3-9, but it is 0".into(),
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                Phone::parse(input),
                Err(PhoneError::Invalid(reason)),
                "input {input:?}"
            );
        }
        assert_eq!(
            PhoneError::Invalid("x".into()).to_string(),
            "invalid mobile phone number: x"
        );
    }

    #[test]
    fn phone_masking_and_serde() {
        let phone = Phone::parse("+86 13812345678").unwrap();
        assert_eq!(phone.masked(), "138****5678");
        assert_eq!(phone.to_string(), "138****5678");
        assert_eq!(format!("{phone:?}"), r#"Phone("138****5678")"#);

        let json = serde_json::to_string(&phone).unwrap();
        assert_eq!(json, r#""13812345678""#);
        assert_eq!(serde_json::from_str::<Phone>(&json).unwrap(), phone);
        assert_eq!(
            serde_json::from_str::<Phone>(r#""+8613812345678""#).unwrap(),
            phone
        );
        assert!(serde_json::from_str::<Phone>(r#""12812345678""#).is_err());
    }

    // -- YearMonth --

    #[test]
    fn year_month_valid_cases() {
        let cases: &[(&str, i32, u32)] = &[
            ("2024-03", 2024, 3),
            ("1900-01", 1900, 1),
            ("2200-12", 2200, 12),
            (" 2024-12\n", 2024, 12),
        ];
        for &(input, year, month) in cases {
            let ym =
                YearMonth::parse(input).unwrap_or_else(|e| panic!("{input:?} should be valid, got {e:?}"));
            assert_eq!((ym.year(), ym.month()), (year, month), "{input:?}");
            assert_eq!(ym.to_string(), input.trim());
            assert_eq!(ym.first_day(), NaiveDate::from_ymd_opt(year, month, 1).unwrap());
        }
    }

    #[test]
    fn year_month_error_cases() {
        let form = |got: &str| {
            format!("expected the form YYYY-MM with a two-digit month, e.g. 2024-03, but got {got:?}")
        };
        let cases: Vec<(&str, String)> = vec![
            ("", form("")),
            ("2024-3", form("2024-3")),
            ("24-03", form("24-03")),
            ("202403", form("202403")),
            ("2024/03", form("2024/03")),
            ("2024-003", form("2024-003")),
            ("abcd-ef", form("abcd-ef")),
            ("+024-03", form("+024-03")),
            ("２０２４-03", form("２０２４-03")),
            ("2024-13", "month 13 is not between 01 and 12".into()),
            ("2024-00", "month 00 is not between 01 and 12".into()),
            (
                "1899-12",
                "year 1899 is outside the supported range 1900-2200".into(),
            ),
            (
                "2201-01",
                "year 2201 is outside the supported range 1900-2200".into(),
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                YearMonth::parse(input),
                Err(YearMonthError::Invalid(reason)),
                "input {input:?}"
            );
        }
        assert_eq!(
            YearMonthError::Invalid("x".into()).to_string(),
            "invalid year and month: x"
        );
        assert!(YearMonth::new(2024, 0).is_err());
        assert!(YearMonth::new(-5, 1).is_err());
    }

    #[test]
    fn year_month_order_and_navigation() {
        let ym = |s: &str| YearMonth::parse(s).unwrap();
        assert!(ym("2023-12") < ym("2024-01"));
        assert!(ym("2024-02") < ym("2024-10"));
        let mut sorted = vec![ym("2024-10"), ym("1999-01"), ym("2024-02")];
        sorted.sort();
        assert_eq!(sorted, vec![ym("1999-01"), ym("2024-02"), ym("2024-10")]);

        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("2024-03", Some("2024-04"), Some("2024-02")),
            ("2023-12", Some("2024-01"), Some("2023-11")),
            ("2024-01", Some("2024-02"), Some("2023-12")),
            ("1900-01", Some("1900-02"), None),
            ("2200-12", None, Some("2200-11")),
        ];
        for &(input, next, prev) in cases {
            let current = ym(input);
            assert_eq!(current.next(), next.map(ym), "next of {input}");
            assert_eq!(current.prev(), prev.map(ym), "prev of {input}");
        }
    }

    #[test]
    fn year_month_display_and_serde_are_unmasked() {
        let ym = YearMonth::parse("2024-03").unwrap();
        assert_eq!(ym.to_string(), "2024-03");
        assert_eq!(ym.as_string(), "2024-03");
        assert_eq!(format!("{ym:?}"), "YearMonth(2024-03)");
        assert_eq!(serde_json::to_string(&ym).unwrap(), r#""2024-03""#);
        assert_eq!(serde_json::from_str::<YearMonth>(r#""2024-03""#).unwrap(), ym);
        assert!(serde_json::from_str::<YearMonth>(r#""2024-13""#).is_err());
        assert!(serde_json::from_str::<YearMonth>("202403").is_err());
    }

    // -- JSON schemas --

    #[test]
    fn json_schemas_are_patterned_strings() {
        let cases: Vec<(Schema, &str)> = vec![
            (schemars::schema_for!(IdNumber), "^[0-9]{17}[0-9Xx]$"),
            (schemars::schema_for!(CreditCode), "^[0-9A-HJ-NPQRTUWXY]{18}$"),
            (schemars::schema_for!(Phone), "^(\\+86)?1[3-9][0-9]{9}$"),
            (schemars::schema_for!(YearMonth), "^[0-9]{4}-(0[1-9]|1[0-2])$"),
        ];
        for (schema, pattern) in cases {
            let value = schema.as_value();
            assert_eq!(value["type"], "string", "{value}");
            assert_eq!(value["pattern"], pattern, "{value}");
            assert!(
                value["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{value}"
            );
        }
        assert_eq!(IdNumber::schema_name(), "IdNumber");
        assert!(IdNumber::schema_id().ends_with("::IdNumber"));
    }

    #[test]
    fn json_schema_as_struct_field_uses_definitions() {
        #[derive(JsonSchema)]
        #[allow(dead_code)]
        struct Person {
            id: IdNumber,
            phone: Option<Phone>,
            employer: CreditCode,
            from: YearMonth,
        }
        let schema = serde_json::to_value(schemars::schema_for!(Person)).unwrap();
        assert_eq!(
            schema["$defs"]["IdNumber"]["pattern"], "^[0-9]{17}[0-9Xx]$",
            "{schema}"
        );
        assert_eq!(schema["properties"]["id"]["$ref"], "#/$defs/IdNumber");
    }
}

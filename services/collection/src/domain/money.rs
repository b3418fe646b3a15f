//! Money in yuan with exactly two decimal places (fen).
//!
//! DOMAIN.md §4: "yuan with 2 decimal places (fen), `rust_decimal`, round half up per line
//! item; the sum of rounded line items is what is due. Never floats." A [`Money`] is always on
//! the fen grid, so adding rounded items can never produce a third decimal and the sum of the
//! items is exactly what the tax authority is asked to collect.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of decimal places of an amount in yuan: one fen is 0.01 yuan.
const FEN_DECIMALS: u32 = 2;

/// 10¹² yuan: every amount parsed is below it (the database keeps amounts in
/// `numeric(14, 2)`), so that sums and differences of amounts stay far from `Decimal::MAX`,
/// where rust_decimal panics.
const LIMIT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// Why a text is not an amount in yuan.
///
/// The error carries the offending text but not the field it came from: the caller that
/// knows the field (a wage, a chosen base, a payment) wraps it with that name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount in yuan is required, but the text is empty")]
    Empty,
    #[error(
        "{input:?} is not an amount in yuan: expected digits with an optional decimal point and \
         at most 2 decimals, e.g. 123.45 (no exponent, no thousands separator)"
    )]
    NotAnAmount { input: String },
    #[error("{input:?} has {decimals} decimals, but an amount in yuan has at most 2 (fen)")]
    TooManyDecimals { input: String, decimals: usize },
    #[error("{input:?} is negative, which is not allowed for this amount")]
    Negative { input: String },
    #[error("{input:?} is too large to be an amount in yuan")]
    TooLarge { input: String },
}

/// An amount in yuan, always with exactly two decimals (fen), possibly negative.
///
/// Negative amounts exist because subtraction produces them (refunds 退收, differences 补差);
/// inputs that must not be negative go through [`Money::parse`], which rejects them.
/// The field is private: every `Money` went through [`Money::round_fen`] or a parser, so it
/// is on the fen grid and never `-0.00`.
///
/// Serialised as a string with two decimals (`"123.45"`) so that no JSON reader turns it
/// into a float.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    /// 0.00 yuan.
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, FEN_DECIMALS));

    /// Rounds an exact amount (e.g. base × rate) to fen, half away from zero
    /// (`RoundingStrategy::MidpointAwayFromZero`, 四舍五入), as DOMAIN.md §4 requires per line
    /// item. 266.6664 → 266.67, 0.005 → 0.01, -0.005 → -0.01.
    #[must_use]
    pub fn round_fen(exact: Decimal) -> Money {
        let mut value = exact.round_dp_with_strategy(FEN_DECIMALS, RoundingStrategy::MidpointAwayFromZero);
        if value.is_zero() {
            // Rounding -0.001 keeps the sign; a due amount of "-0.00" would only confuse.
            value = Decimal::ZERO;
        }
        value.rescale(FEN_DECIMALS);
        Money(value)
    }

    /// An amount given in fen (e.g. 12345 → 123.45), as banks and the tax authority often
    /// report it.
    #[must_use]
    pub fn from_fen(fen: i64) -> Money {
        Money::round_fen(Decimal::new(fen, FEN_DECIMALS))
    }

    /// Parses a non-negative amount such as `123.45`, `0.5` or `100`.
    ///
    /// Strict on purpose, because a misplaced unit (fen typed as yuan) or a spreadsheet's
    /// formatting must not slip through: digits, an optional point followed by one or two
    /// digits; no sign, exponent, thousands separator or underscore. Surrounding whitespace
    /// is ignored.
    ///
    /// # Errors
    ///
    /// [`MoneyError`] naming the first problem, [`MoneyError::Negative`] for a leading `-`.
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        Self::parse_inner(input, false)
    }

    /// Like [`Money::parse`] but also accepts a leading `-`, for adjustments (refund 退收,
    /// difference 补差) and for reading back what [`Serialize`] wrote.
    ///
    /// # Errors
    ///
    /// [`MoneyError`] naming the first problem.
    pub fn parse_signed(input: &str) -> Result<Money, MoneyError> {
        Self::parse_inner(input, true)
    }

    fn parse_inner(input: &str, allow_negative: bool) -> Result<Money, MoneyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MoneyError::Empty);
        }
        let not_an_amount = || MoneyError::NotAnAmount {
            input: trimmed.to_owned(),
        };
        let (negative, unsigned) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let (integer, fraction) = match unsigned.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(not_an_amount());
        }
        let decimals = fraction.map_or(0, str::len);
        if decimals > FEN_DECIMALS as usize {
            return Err(MoneyError::TooManyDecimals {
                input: trimmed.to_owned(),
                decimals,
            });
        }
        if negative && !allow_negative {
            return Err(MoneyError::Negative {
                input: trimmed.to_owned(),
            });
        }
        let too_large = || MoneyError::TooLarge {
            input: trimmed.to_owned(),
        };
        let value: Decimal = trimmed.parse().map_err(|_| too_large())?;
        if value.abs() >= LIMIT {
            return Err(too_large());
        }
        Ok(Money::round_fen(value))
    }

    /// The amount in yuan, with scale 2.
    #[must_use]
    pub fn amount(self) -> Decimal {
        self.0
    }

    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    #[must_use]
    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }
}

impl fmt::Display for Money {
    /// `123.45`, `0.00`, `-7.00`: always two decimals, no currency sign.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

// Amounts in this domain are far below `Decimal::MAX` (about 7.9e28), so `+` and `-` cannot
// overflow in practice; rust_decimal would panic if they did. The sum of two fen amounts is
// a fen amount, so no re-rounding is needed, but `round_fen` keeps the scale at exactly 2.
impl Add for Money {
    type Output = Money;

    fn add(self, rhs: Money) -> Money {
        Money::round_fen(self.0 + rhs.0)
    }
}

impl Sub for Money {
    type Output = Money;

    fn sub(self, rhs: Money) -> Money {
        Money::round_fen(self.0 - rhs.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        *self = *self - rhs;
    }
}

impl Neg for Money {
    type Output = Money;

    fn neg(self) -> Money {
        Money::round_fen(-self.0)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Only from a string (never from a JSON number, which a reader may have made a float),
    /// through [`Money::parse_signed`]: a serialised `Money` may be negative.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Money::parse_signed(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn round_fen_is_half_away_from_zero() {
        let cases: &[(&str, &str)] = &[
            ("266.6664", "266.67"),
            ("66.6666", "66.67"),
            ("333.333", "333.33"),
            ("0.005", "0.01"),
            ("0.0049999", "0.00"),
            ("0.015", "0.02"),
            ("0.025", "0.03"),
            ("2.675", "2.68"),
            ("-0.005", "-0.01"),
            ("-0.004", "0.00"),
            ("-2.675", "-2.68"),
            ("7", "7.00"),
            ("5960.25", "5960.25"),
            ("0", "0.00"),
        ];
        for &(exact, rounded) in cases {
            let money = Money::round_fen(d(exact));
            assert_eq!(money.to_string(), rounded, "round_fen({exact})");
            assert_eq!(money.amount().scale(), 2, "scale of round_fen({exact})");
        }
        assert!(!Money::round_fen(d("-0.004")).is_negative());
    }

    #[test]
    fn hangzhou_2020_standard_base_is_71523_over_12() {
        assert_eq!(
            Money::round_fen(d("71523") / d("12")),
            Money::parse("5960.25").unwrap()
        );
    }

    #[test]
    fn parse_accepts_plain_amounts() {
        let cases: &[(&str, &str)] = &[
            ("123.45", "123.45"),
            ("0.5", "0.50"),
            ("100", "100.00"),
            ("007.10", "7.10"),
            ("  8000\n", "8000.00"),
            ("0", "0.00"),
            ("0.00", "0.00"),
        ];
        for &(input, shown) in cases {
            let money = Money::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(money.to_string(), shown, "{input:?}");
        }
    }

    #[test]
    fn parse_rejects_what_is_not_a_fen_amount() {
        let not = |s: &str| MoneyError::NotAnAmount { input: s.into() };
        let cases: Vec<(&str, MoneyError)> = vec![
            ("", MoneyError::Empty),
            ("   ", MoneyError::Empty),
            ("abc", not("abc")),
            ("1,000.00", not("1,000.00")),
            ("1_000", not("1_000")),
            ("1e3", not("1e3")),
            (".5", not(".5")),
            ("5.", not("5.")),
            ("+5", not("+5")),
            ("--5", not("--5")),
            ("5.-1", not("5.-1")),
            ("１２３", not("１２３")),
            (
                "1.234",
                MoneyError::TooManyDecimals {
                    input: "1.234".into(),
                    decimals: 3,
                },
            ),
            (
                "1.230",
                MoneyError::TooManyDecimals {
                    input: "1.230".into(),
                    decimals: 3,
                },
            ),
            (
                "-0.01",
                MoneyError::Negative {
                    input: "-0.01".into(),
                },
            ),
            (
                "99999999999999999999999999999999",
                MoneyError::TooLarge {
                    input: "99999999999999999999999999999999".into(),
                },
            ),
        ];
        for (input, error) in cases {
            assert_eq!(Money::parse(input), Err(error), "{input:?}");
        }
    }

    /// `make fuzz` (money target): `79228162514264337593543950335` (`Decimal::MAX`) was an
    /// amount, and adding it to anything panicked ("Addition overflowed").
    #[test]
    fn parse_refuses_amounts_the_arithmetic_cannot_hold() {
        assert_eq!(LIMIT, Decimal::from(1_000_000_000_000_i64));
        for input in [
            "79228162514264337593543950335",
            "1000000000000",
            "-1000000000000.00",
        ] {
            assert_eq!(
                Money::parse_signed(input),
                Err(MoneyError::TooLarge { input: input.into() }),
                "{input}"
            );
        }
        let largest = Money::parse("999999999999.99").unwrap();
        assert_eq!((largest + largest).to_string(), "1999999999999.98");
        assert_eq!(
            Money::parse("0000000000000000000000000000001")
                .unwrap()
                .to_string(),
            "1.00"
        );
    }

    #[test]
    fn parse_signed_allows_a_minus_and_nothing_else() {
        assert_eq!(Money::parse_signed("-7").unwrap().to_string(), "-7.00");
        assert!(Money::parse_signed("-7").unwrap().is_negative());
        assert_eq!(Money::parse_signed("-0.00").unwrap(), Money::ZERO);
        assert_eq!(Money::parse_signed("-0.00").unwrap().to_string(), "0.00");
        assert!(Money::parse_signed("-1.001").is_err());
        assert!(Money::parse_signed("- 1").is_err());
    }

    #[test]
    fn arithmetic_stays_on_the_fen_grid() {
        let m = |s: &str| Money::parse_signed(s).unwrap();
        assert_eq!(m("400.00") + m("100.00"), m("500.00"));
        assert_eq!(m("266.67") + m("66.67"), m("333.34"));
        assert_eq!(m("100") - m("100.01"), m("-0.01"));
        assert_eq!(-m("7"), m("-7"));
        let mut running = Money::ZERO;
        running += m("1.10");
        running -= m("0.10");
        assert_eq!(running, m("1"));
        assert_eq!((m("0.1") + m("0.2")).amount().scale(), 2);
        assert_eq!(
            vec![m("0.10"), m("0.20"), m("0.30")].into_iter().sum::<Money>(),
            m("0.60")
        );
        assert_eq!([m("1"), m("2")].iter().sum::<Money>(), m("3"));
        assert_eq!(Vec::<Money>::new().into_iter().sum::<Money>(), Money::ZERO);
        assert!(Money::ZERO.is_zero());
        assert!(!m("0.01").is_zero());
        assert!(m("0.01") > Money::ZERO);
    }

    #[test]
    fn from_fen_and_display() {
        let cases: &[(i64, &str)] = &[(0, "0.00"), (1, "0.01"), (12345, "123.45"), (-700, "-7.00")];
        for &(fen, shown) in cases {
            assert_eq!(Money::from_fen(fen).to_string(), shown);
        }
        assert_eq!(format!("{:?}", Money::from_fen(12345)), "Money(123.45)");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::default(), Money::ZERO);
    }

    #[test]
    fn serde_is_a_two_decimal_string() {
        let m = Money::parse("123.4").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#""123.40""#);
        assert_eq!(serde_json::from_str::<Money>(r#""123.40""#).unwrap(), m);
        assert_eq!(
            serde_json::from_str::<Money>(r#""-7.00""#).unwrap(),
            Money::from_fen(-700)
        );
        assert_eq!(
            serde_json::to_string(&Money::from_fen(-700)).unwrap(),
            r#""-7.00""#
        );
        assert!(
            serde_json::from_str::<Money>("123.4").is_err(),
            "numbers are refused"
        );
        assert!(serde_json::from_str::<Money>(r#""123.456""#).is_err());
    }
}

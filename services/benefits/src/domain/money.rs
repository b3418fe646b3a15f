//! Yuan to the fen, half up (四舍五入), as DOMAIN.md §4 requires. Never floats.

use rust_decimal::{Decimal, RoundingStrategy};

/// Rounds to the fen, half away from zero, always with two decimals and never `-0.00`.
pub fn fen(d: Decimal) -> Decimal {
    let mut v = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    if v.is_zero() {
        v = Decimal::ZERO;
    }
    v.rescale(2);
    v
}

/// The wire spelling: `"123.45"`.
pub fn text(d: Decimal) -> String {
    fen(d).to_string()
}

/// Why a text is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not a decimal number")]
    NotANumber(String),
    #[error("{0:?} has more than {1} decimals")]
    TooManyDecimals(String, u32),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is too large: at most 12 digits before the decimal point")]
    TooLarge(String),
}

/// Amounts and quantities are below 10¹² (the database keeps them in `numeric(14, 2)` or
/// narrower), so that a product of two (a fee line's count × unit price) or a sum of many
/// stays far from `Decimal::MAX`, where rust_decimal panics.
const LIMIT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// A non-negative decimal with at most `dp` decimals (2 for money, more for a quantity or
/// a unit price). Plain digits only: no sign, exponent or separator.
pub fn parse(s: &str, dp: u32) -> Result<Decimal, AmountError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(AmountError::Negative(s.to_owned()));
    }
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(AmountError::NotANumber(s.to_owned()));
    }
    let d: Decimal = t.parse().map_err(|_| AmountError::NotANumber(s.to_owned()))?;
    if d.scale() > dp {
        return Err(AmountError::TooManyDecimals(s.to_owned(), dp));
    }
    if d >= LIMIT {
        return Err(AmountError::TooLarge(s.to_owned()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_up_to_the_fen() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(text(d("266.6664")), "266.67");
        assert_eq!(text(d("0.005")), "0.01");
        assert_eq!(text(d("0.004")), "0.00");
        assert_eq!(text(d("-0.001")), "0.00");
        assert_eq!(text(d("12")), "12.00");
    }

    #[test]
    fn parses_plain_amounts_only() {
        assert_eq!(parse("12.30", 2).unwrap().to_string(), "12.30");
        assert!(matches!(parse("1.001", 2), Err(AmountError::TooManyDecimals(..))));
        assert!(matches!(parse("-1", 2), Err(AmountError::Negative(_))));
        assert!(matches!(parse("1e3", 2), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse("", 2), Err(AmountError::NotANumber(_))));
        assert_eq!(parse("2.5", 4).unwrap().to_string(), "2.5");
    }

    /// `make fuzz` (money target): a fee line of count and unit price 796433759354336 made
    /// the settlement's `cnt × pric` overflow, a handler panic (parked, `INTERNAL`) instead
    /// of a rejected field.
    #[test]
    fn refuses_what_would_overflow_a_product() {
        assert_eq!(LIMIT, Decimal::from(1_000_000_000_000_i64));
        assert!(matches!(
            parse("796433759354336", 4),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(parse("1000000000000", 2), Err(AmountError::TooLarge(_))));
        // The largest count times the largest unit price is still a number.
        let product = parse("999999999999.9999", 4).unwrap() * parse("999999999999.999999", 6).unwrap();
        assert!(product > parse("999999999999.99", 2).unwrap());
        assert_eq!(parse("000000000000000007.10", 2).unwrap().to_string(), "7.10");
    }
}

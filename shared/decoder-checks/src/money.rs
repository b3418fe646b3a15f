//! The money parsers: the collection service's `Money` (`parse`, `parse_signed`, serde) and
//! the benefits service's `domain::money::parse` (an amount with at most `dp` decimals).
//!
//! Properties: no panic; a parsed amount is on the fen grid, not negative unless signed
//! parsing allowed it, and what it shows parses back to it (and through JSON); a benefits
//! amount keeps at most `dp` decimals, is not negative, parses back from what it shows, and
//! rounding it to the fen gives an amount that parses. And what the services then do with
//! accepted amounts does not overflow (rust_decimal panics when it does): collection adds and
//! subtracts amounts (a payment to what was paid), benefits multiplies a fee line's count
//! (4 decimals) by its unit price (6 decimals) and rounds to the fen.

use benefits::domain::money as amounts;
use collection::domain::Money;

/// Every money parser on `text`.
pub fn check(text: &str) {
    collection_money(text);
    benefits_amount(text);
}

pub fn collection_money(text: &str) {
    let unsigned = Money::parse(text);
    let signed = Money::parse_signed(text);
    if let Ok(m) = &unsigned {
        assert_eq!(
            signed.as_ref(),
            Ok(m),
            "an unsigned amount parses the same signed"
        );
        assert!(!m.is_negative(), "parse never gives a negative amount");
    }
    let from_json: Option<Money> = serde_json::from_value(serde_json::Value::String(text.to_owned())).ok();
    assert_eq!(
        from_json,
        signed.clone().ok(),
        "JSON reads an amount as parse_signed does"
    );
    let Ok(m) = signed else { return };
    let shown = m.to_string();
    let (_, decimals) = shown.split_once('.').expect("two decimals shown");
    assert_eq!(decimals.len(), 2, "{shown} has two decimals");
    assert_eq!(
        Money::parse_signed(&shown),
        Ok(m),
        "{text:?} shows as {shown}, which parses back"
    );
    let json = serde_json::to_string(&m).expect("serialises");
    assert_eq!(
        serde_json::from_str::<Money>(&json).ok(),
        Some(m),
        "{text:?} through JSON"
    );
    let doubled = m + m;
    let _ = Money::ZERO - doubled - doubled;
}

pub fn benefits_amount(text: &str) {
    for dp in 0..=6 {
        let Ok(d) = amounts::parse(text, dp) else { continue };
        assert!(d.scale() <= dp, "{text:?}: scale {} > {dp}", d.scale());
        assert!(!d.is_sign_negative(), "{text:?} parsed negative");
        let shown = d.to_string();
        assert_eq!(
            amounts::parse(&shown, dp),
            Ok(d),
            "{text:?} shows as {shown}, which parses back"
        );
        let fen = amounts::text(d);
        assert_eq!(
            amounts::parse(&fen, 2),
            Ok(amounts::fen(d)),
            "{text:?} rounded to {fen}"
        );
    }
    if let (Ok(cnt), Ok(pric)) = (amounts::parse(text, 4), amounts::parse(text, 6)) {
        let _ = amounts::text(cnt * pric);
    }
}

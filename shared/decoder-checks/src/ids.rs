//! The identifier parsers of `contracts::ids`, on any text.
//!
//! Properties: no panic; a parsed value is normalised (parsing what it holds gives it back,
//! with the length and alphabet its standard says); reading it from JSON gives what `parse`
//! gives; writing it to JSON and reading it back gives it back; the masked form hides it.

use contracts::ids::{CreditCode, IdNumber, Phone, RegionCode, YearMonth};
use serde_json::Value;

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(Value::String(text.to_owned())).ok()
}

/// `s` (ASCII) with all but the first `start` and the last `end` characters as `*`.
fn masked(s: &str, start: usize, end: usize) -> String {
    format!(
        "{}{}{}",
        &s[..start],
        "*".repeat(s.len() - start - end),
        &s[s.len() - end..]
    )
}

/// Every identifier parser on `text`.
pub fn check(text: &str) {
    id_number(text);
    credit_code(text);
    phone(text);
    year_month(text);
    region_code(text);
}

pub fn id_number(text: &str) {
    let parsed = IdNumber::parse(text);
    assert_eq!(
        from_json::<IdNumber>(text),
        parsed.clone().ok(),
        "JSON reads an ID number as parse does"
    );
    let Ok(id) = parsed else { return };
    let s = id.as_str();
    assert_eq!(s.len(), 18);
    assert!(s[..17].bytes().all(|b| b.is_ascii_digit()) && matches!(s.as_bytes()[17], b'0'..=b'9' | b'X'));
    assert_eq!(
        IdNumber::parse(s).as_ref(),
        Ok(&id),
        "an ID number parses to itself"
    );
    assert_eq!(id.region_code(), &s[..6]);
    assert_eq!(id.birth_date().format("%Y%m%d").to_string(), &s[6..14]);
    let json = serde_json::to_string(&id).expect("serialises");
    assert_eq!(serde_json::from_str::<IdNumber>(&json).ok(), Some(id.clone()));
    assert_eq!(id.to_string(), masked(s, 4, 4), "Display masks the ID number");
}

pub fn credit_code(text: &str) {
    let parsed = CreditCode::parse(text);
    assert_eq!(
        from_json::<CreditCode>(text),
        parsed.clone().ok(),
        "JSON reads a credit code as parse does"
    );
    let Ok(code) = parsed else { return };
    let s = code.as_str();
    assert_eq!(s.len(), 18);
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"IOSVZ".contains(&b)))
    );
    assert_eq!(
        CreditCode::parse(s).as_ref(),
        Ok(&code),
        "a credit code parses to itself"
    );
    let json = serde_json::to_string(&code).expect("serialises");
    assert_eq!(serde_json::from_str::<CreditCode>(&json).ok(), Some(code.clone()));
    assert!(
        !code.to_string().contains(&s[6..14]),
        "Display masks the credit code"
    );
}

pub fn phone(text: &str) {
    let parsed = Phone::parse(text);
    assert_eq!(
        from_json::<Phone>(text),
        parsed.clone().ok(),
        "JSON reads a phone as parse does"
    );
    let Ok(phone) = parsed else { return };
    let s = phone.as_str();
    assert_eq!(s.len(), 11);
    assert!(s.bytes().all(|b| b.is_ascii_digit()) && s.starts_with('1'));
    assert_eq!(Phone::parse(s).as_ref(), Ok(&phone), "a phone parses to itself");
    assert_eq!(Phone::parse(&format!("+86 {s}")).as_ref(), Ok(&phone));
    let json = serde_json::to_string(&phone).expect("serialises");
    assert_eq!(serde_json::from_str::<Phone>(&json).ok(), Some(phone.clone()));
    assert_eq!(phone.to_string(), masked(s, 3, 4), "Display masks the phone");
}

pub fn year_month(text: &str) {
    let parsed = YearMonth::parse(text);
    assert_eq!(
        from_json::<YearMonth>(text),
        parsed.clone().ok(),
        "JSON reads a month as parse does"
    );
    let Ok(month) = parsed else { return };
    assert!((1900..=2200).contains(&month.year()) && (1..=12).contains(&month.month()));
    let shown = month.to_string();
    assert_eq!(
        YearMonth::parse(&shown),
        Ok(month),
        "a month parses from what it shows"
    );
    assert_eq!(YearMonth::new(month.year(), month.month()), Ok(month));
    if let Some(next) = month.next() {
        assert!(next > month);
        assert_eq!(next.prev(), Some(month));
    }
    if let Some(prev) = month.prev() {
        assert!(prev < month);
        assert_eq!(prev.next(), Some(month));
    }
    let json = serde_json::to_string(&month).expect("serialises");
    assert_eq!(serde_json::from_str::<YearMonth>(&json).ok(), Some(month));
}

pub fn region_code(text: &str) {
    let parsed = RegionCode::parse(text);
    assert_eq!(
        from_json::<RegionCode>(text),
        parsed.clone().ok(),
        "JSON reads a region as parse does"
    );
    let Ok(region) = parsed else { return };
    assert!(region.as_str().len() == 6 && region.as_str().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(RegionCode::parse(&region.to_string()).as_ref(), Ok(&region));
    let json = serde_json::to_string(&region).expect("serialises");
    assert_eq!(serde_json::from_str::<RegionCode>(&json).ok(), Some(region));
}

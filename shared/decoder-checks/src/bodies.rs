//! Every body type of `contracts::schema::register`, decoded as a consumer decodes it.
//!
//! Property: a body either does not decode, or it decodes and the value written back
//! decodes again to the same JSON (no field lost, renamed or reformatted on the way). The
//! ordering key the consumer takes from the body (`contracts::ordering::key_of`) is taken too.

use contracts::schema::{BodyError, BodyType};
use serde_json::Value;
use std::sync::OnceLock;

/// The registry's decoders, in file-name order.
pub fn types() -> &'static [BodyType] {
    static TYPES: OnceLock<Vec<BodyType>> = OnceLock::new();
    TYPES.get_or_init(contracts::schema::body_types)
}

/// `(service, name)` of a file name that names a consumed message: a command
/// (`<service>.<name>.command.json`) or an event (`<service>.<name>.v<N>.json`).
pub fn consumed_as(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".json")?;
    let (service, rest) = stem.split_once('.')?;
    let name = rest.strip_suffix(".command").or_else(|| {
        let (name, v) = rest.rsplit_once(".v")?;
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some(name)
    })?;
    Some((service, name))
}

/// Decodes `body` as `ty` and checks the round trip; `true` when it decoded.
pub fn check_value(ty: &BodyType, body: &Value) -> bool {
    if let Some((service, name)) = consumed_as(&ty.file) {
        let _ = contracts::ordering::key_of(service, name, body);
    }
    let written = match (ty.decode)(body.clone()) {
        Ok(v) => v,
        Err(BodyError::Decode(_)) => return false,
        Err(e @ BodyError::Encode(_)) => panic!("{}: {e}", ty.file),
    };
    match (ty.decode)(written.clone()) {
        Ok(again) => assert_eq!(
            again, written,
            "{}: what a decoded body writes decodes to something else",
            ty.file
        ),
        Err(e) => panic!(
            "{}: what a decoded body writes does not decode: {e}\nwritten: {written}",
            ty.file
        ),
    }
    true
}

/// Raw bytes as a body of `ty`: first through `serde_json` into a value, as the consumer's
/// decode does, then [`check_value`].
pub fn check_bytes(ty: &BodyType, data: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(data) {
        Ok(body) => check_value(ty, &body),
        Err(_) => false,
    }
}

/// The fuzz target's input: two bytes pick the type (big-endian index, modulo the number of
/// types), the rest is the body.
pub fn fuzz(data: &[u8]) {
    let [hi, lo, body @ ..] = data else { return };
    let all = types();
    let ty = &all[usize::from(u16::from_be_bytes([*hi, *lo])) % all.len()];
    check_bytes(ty, body);
}

/// A fuzz input for [`fuzz`]: the type with index `index` and `body`.
pub fn fuzz_input(index: usize, body: &[u8]) -> Vec<u8> {
    let index = u16::try_from(index).expect("fewer than 65536 body types");
    let mut out = index.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

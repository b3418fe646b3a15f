//! The properties every decoder must keep, whatever the bytes: no panic, no hang, and where
//! it is cheap a round trip (parse → write → parse gives the same value). One place for
//! them, run two ways:
//!
//! - `fuzz/`: cargo-fuzz (libFuzzer) targets, one per `fuzz_*` function here (`make fuzz`);
//! - `tests/properties.rs`: proptest with bounded case counts, in `make test`.
//!
//! A broken property panics, which both runners report as a failure with the input.
//!
//! - [`envelope`]: what a consumer does with a delivery (`messaging::consumer::decode_parts`)
//!   and then with the envelope, routing key and body before a handler runs;
//! - [`bodies`]: every command, result and event body type of `contracts::schema::register`;
//! - [`ids`]: ID number (GB 11643), credit code (GB 32100), phone, year-month, region code;
//! - [`money`]: the collection service's `Money` and the benefits service's amount parser;
//! - [`examples`]: a valid-looking JSON value for every schema, the seeds the fuzzers and the
//!   property tests mutate.

pub mod bodies;
pub mod envelope;
pub mod examples;
pub mod ids;
pub mod money;
pub mod mutate;

/// Runs `f` on `data` as text, if it is UTF-8 (the parsers take `&str`).
pub fn with_text(data: &[u8], f: impl FnOnce(&str)) {
    if let Ok(text) = std::str::from_utf8(data) {
        f(text);
    }
}

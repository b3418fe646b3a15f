//! ID number (GB 11643), credit code (GB 32100), phone, year-month and region code parsers:
//! `decoder_checks::ids`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| decoder_checks::with_text(data, decoder_checks::ids::check));

//! The money parsers (collection's `Money`, benefits' amounts): `decoder_checks::money`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| decoder_checks::with_text(data, decoder_checks::money::check));

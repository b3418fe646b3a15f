//! Every command, result and event body type of the contracts registry (two bytes pick the
//! type, the rest is the JSON body): `decoder_checks::bodies`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| decoder_checks::bodies::fuzz(data));

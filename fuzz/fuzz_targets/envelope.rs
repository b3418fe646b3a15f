//! A delivery (exchange, routing key, AMQP properties and headers, body) through the
//! consumer's decode and what runs before a handler: `decoder_checks::envelope`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| decoder_checks::envelope::fuzz(data));

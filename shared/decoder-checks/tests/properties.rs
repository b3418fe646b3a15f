//! The fuzz targets' properties (`fuzz/`, `make fuzz`) as bounded property tests, so that
//! `make test` runs a short version of every one: arbitrary bytes and text, and mutations of
//! valid examples, fed to the envelope, every body type, the identifier and the money
//! parsers. Case counts are fixed so the whole file runs in seconds.

use arbitrary::{Arbitrary, Unstructured};
use decoder_checks::mutate::{self, Mutation};
use decoder_checks::{bodies, envelope, examples, ids, money};
use proptest::prelude::*;

/// Deterministic bytes (SplitMix64), for the tests that go through every type.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn mutations(data: &[u8]) -> Vec<Mutation> {
    Vec::<Mutation>::arbitrary(&mut Unstructured::new(data)).unwrap_or_default()
}

#[test]
fn every_body_type_has_an_example_that_decodes() {
    let all = examples::all();
    let types = bodies::types();
    assert_eq!(all.len(), types.len());
    let failing: Vec<&str> = types
        .iter()
        .zip(all)
        .filter(|(ty, (_, example))| !bodies::check_value(ty, example))
        .map(|(ty, _)| ty.file.as_str())
        .collect();
    assert!(
        failing.is_empty(),
        "examples that do not decode as their type: {failing:?}"
    );
}

#[test]
fn every_body_type_survives_mutations_of_its_example() {
    let types = bodies::types();
    for (i, (ty, (_, example))) in types.iter().zip(examples::all()).enumerate() {
        for round in 0..16_u64 {
            let mut v = example.clone();
            mutate::apply(&mut v, &mutations(&bytes(i as u64 * 1000 + round, 24)));
            bodies::check_value(ty, &v);
            // And as text with a few bytes changed, through the consumer's JSON parse.
            let mut text = serde_json::to_vec(&example).unwrap();
            for (k, b) in bytes(round, 6).chunks(2).enumerate() {
                if !text.is_empty() {
                    let at = (usize::from(b[0]) * 7 + k) % text.len();
                    text[at] = b[1];
                }
            }
            bodies::check_bytes(ty, &text);
        }
    }
}

fn consumed_files() -> Vec<&'static str> {
    bodies::types()
        .iter()
        .filter(|t| bodies::consumed_as(&t.file).is_some())
        .map(|t| t.file.as_str())
        .collect()
}

#[test]
fn every_consumed_type_decodes_from_a_well_formed_delivery() {
    for index in 0..consumed_files().len() {
        let d = envelope::RawDelivery {
            command: true,
            exchange: Some("medical.commands".into()),
            routing_key: envelope::Route::Registered {
                line: 0,
                index: index as u16,
            },
            message_id: envelope::MessageId::Uuid(0x0190_a6f2_7b1c_7d3e_8f40_1234_5678_9abc),
            correlation_id: Some("c-1".into()),
            reply_to: Some("amq.rabbitmq.reply-to".into()),
            message_type: Some(envelope::TypeText::Registered {
                index: index as u16,
                version: 1,
            }),
            timestamp: Some(1_710_000_000),
            app_id: Some("insurancectl".into()),
            headers: vec![(envelope::HeaderName::Known(0), envelope::HeaderValue::Channel(3))],
            body: envelope::Body::Example {
                index: None,
                mutations: vec![],
            },
        };
        // Commands on the command path, events on the event path.
        for command in [true, false] {
            let d = envelope::RawDelivery { command, ..d.clone() };
            let outcome = envelope::check(&d);
            let file = &consumed_files()[index];
            if file.ends_with(".command.json") == command {
                assert_eq!(outcome, envelope::Outcome::Body(true), "{file}");
            } else {
                assert_ne!(outcome, envelope::Outcome::Malformed, "{file}");
            }
        }
    }
}

#[test]
fn every_delivery_shape_survives_seeded_bytes() {
    for seed in 0..2000 {
        envelope::fuzz(&bytes(seed, 64 + (seed as usize % 512)));
    }
}

/// Found by `make fuzz` (a timeout of `envelope`, the mutator's fault): 0xff mutations made
/// the body's `Stringify` repeat until the body had gigabytes. It now stops at 64 KiB.
#[test]
fn a_delivery_of_many_mutations_stays_small() {
    let input = hex(concat!(
        "421b9f38950aa065000000345539ed0e1c7c18d8d0e15b837c3e9b5e5de9964cb49522e409785e0b212f00",
        "ffffffa7",
    ));
    let mut input = input;
    input.extend(std::iter::repeat_n(0xff, 189));
    input.extend(hex("78f33a"));
    let started = std::time::Instant::now();
    envelope::fuzz(&input);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Found by `make fuzz` and by `money_of_digits`: amounts both services accepted, whose sum
/// (collection) or count × unit price (benefits settlement) overflowed rust_decimal, a panic.
/// Both parsers now refuse 10¹² and more.
#[test]
fn amounts_too_large_to_compute_with_are_refused() {
    for text in [
        "796433759354336",
        "281480000000000",
        "79228162514264337593543950335",
    ] {
        money::check(text);
        assert!(collection::domain::Money::parse(text).is_err(), "{text}");
        assert!(benefits::domain::money::parse(text, 4).is_err(), "{text}");
    }
}

#[test]
fn the_examples_identifiers_are_valid() {
    assert!(contracts::ids::IdNumber::parse(examples::ID_NUMBER).is_ok());
    assert!(contracts::ids::CreditCode::parse(examples::CREDIT_CODE).is_ok());
    assert!(contracts::ids::Phone::parse(examples::PHONE).is_ok());
}

/// Found by `make fuzz` (the check's fault, not the parser's): a phone whose middle four
/// digits are also its last four still masks to `138****1238`.
#[test]
fn a_phone_whose_middle_repeats_its_end_is_masked() {
    ids::phone("13812381238");
}

#[test]
fn interesting_texts_go_through_every_parser() {
    for text in mutate::INTERESTING {
        ids::check(text);
        money::check(text);
    }
}

/// Replaces, inserts or deletes characters of `valid`.
fn near(valid: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec((any::<u8>(), 0_u8..3, any::<char>()), 0..4),
        prop_oneof![Just(""), Just(" "), Just("\t"), Just("\u{3000}")],
    )
        .prop_map(move |(edits, pad)| {
            let mut chars: Vec<char> = valid.chars().collect();
            for (at, op, c) in edits {
                let i = usize::from(at) % (chars.len() + 1);
                match op {
                    0 if i < chars.len() => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ => {}
                }
            }
            format!("{pad}{}{pad}", chars.into_iter().collect::<String>())
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bodies_of_arbitrary_bytes(index in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..256)) {
        bodies::fuzz(&bodies::fuzz_input(usize::from(index) % bodies::types().len(), &data));
    }

    #[test]
    fn bodies_of_mutated_examples(index in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..96)) {
        let all = examples::all();
        let i = usize::from(index) % all.len();
        let mut v = all[i].1.clone();
        mutate::apply(&mut v, &mutations(&data));
        bodies::check_value(&bodies::types()[i], &v);
    }

    #[test]
    fn deliveries_of_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        envelope::fuzz(&data);
    }

    #[test]
    fn identifiers_of_any_text(text in any::<String>()) {
        ids::check(&text);
    }

    #[test]
    fn identifiers_near_valid_ones(
        id in near(examples::ID_NUMBER),
        code in near(examples::CREDIT_CODE),
        phone in near(examples::PHONE),
        month in near("2024-03"),
        region in near("420100"),
    ) {
        for text in [id, code, phone, month, region] {
            ids::check(&text);
        }
    }

    #[test]
    fn identifiers_of_digits(text in "[0-9Xx+ -]{0,20}") {
        ids::check(&text);
    }

    #[test]
    fn money_of_any_text(text in any::<String>()) {
        money::check(&text);
    }

    #[test]
    fn money_of_digits(text in "[ ]?-?[0-9]{0,32}([.][0-9]{0,5})?[ ]?") {
        money::check(&text);
    }

    #[test]
    fn money_near_valid_amounts(text in near("123.45")) {
        money::check(&text);
    }
}

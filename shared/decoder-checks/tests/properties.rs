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

/// Every input `make fuzz` found (`tests/regressions/<target>-<what>`), through its target
/// again: a delivery whose `app_id` is longer than AMQP allows (the harness's fault), a
/// body mutated until it had gigabytes (a timeout, the harness's fault), a fee line whose
/// count × unit price overflowed (benefits), a phone whose middle repeats its end (the
/// check's fault).
#[test]
fn what_make_fuzz_found_stays_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let started = std::time::Instant::now();
        match name.split('-').next().unwrap() {
            "envelope" => envelope::fuzz(&data),
            "bodies" => bodies::fuzz(&data),
            "ids" => decoder_checks::with_text(&data, ids::check),
            "money" => decoder_checks::with_text(&data, money::check),
            other => panic!("{name}: no target {other}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{name} is slow"
        );
        seen += 1;
    }
    assert!(seen >= 4, "the regression inputs are there");
}

#[test]
fn the_examples_identifiers_are_valid() {
    assert!(contracts::ids::IdNumber::parse(examples::ID_NUMBER).is_ok());
    assert!(contracts::ids::CreditCode::parse(examples::CREDIT_CODE).is_ok());
    assert!(contracts::ids::Phone::parse(examples::PHONE).is_ok());
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

//! The published contract (issue 13 §5): `shared/contracts/asyncapi.json` passes the AsyncAPI
//! parser, and the parser really checks it (a document with a broken reference or an
//! invalid operation fails). Drift against the Rust types is the contracts crate's own test.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validate(file: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg(root().join("scripts/contract-tools.sh"))
        .arg("validate")
        .arg(file)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_committed_document_is_valid_asyncapi_3() {
    let doc = root().join("shared/contracts/asyncapi.json");
    let (ok, text) = validate(&doc);
    assert!(ok, "the AsyncAPI parser refused {}:\n{text}", doc.display());
    assert!(text.contains("valid AsyncAPI 3.0.0"), "{text}");
    let parsed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&doc).unwrap()).unwrap();
    let channels = parsed["channels"].as_object().unwrap().len();
    assert!(text.contains(&format!("{channels} channels")), "{text}");
}

#[test]
fn the_parser_refuses_a_broken_document() {
    let doc = root().join("shared/contracts/asyncapi.json");
    let good: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&doc).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("asyncapi-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut broken_ref = good.clone();
    broken_ref["operations"]["send.enrollment.enroll-person"]["channel"]["$ref"] =
        "#/channels/nowhere".into();
    let mut bad_action = good.clone();
    bad_action["operations"]["receive.enrollment.person-enrolled.v1"]["action"] = "subscribe".into();
    let mut bad_schema = good;
    bad_schema["components"]["schemas"]["enrollment.enroll-person.command"]["type"] = 42.into();

    for (name, doc) in [
        ("broken-ref", broken_ref),
        ("bad-action", bad_action),
        ("bad-schema", bad_schema),
    ] {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let (ok, text) = validate(&file);
        assert!(!ok, "the parser accepted the {name} document:\n{text}");
        assert!(text.contains("error"), "{name}: {text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

//! An outside client in another language (Python, pika) that knows the suite only through the
//! published AsyncAPI document (issue 13 §5): it takes the exchange, routing key, properties,
//! headers and schemas of `enroll-person` and `person-enrolled` from the document, sends the
//! command, checks the reply and the event against the document's schemas, and prints them.

mod common;

use std::path::Path;
use std::process::Command;
use testkit::TestEnv;

#[tokio::test]
async fn a_python_client_enrolls_a_person_and_reads_the_event_from_the_document_alone() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let id = testkit::id_number(7);
    let body = serde_json::json!({
        "id_number": id, "name": "王五", "phone": testkit::phone(7), "category": "flexible",
        "insurance_types": ["employee_medical"], "effective_month": "2024-05"
    });
    let run = {
        let root = root.clone();
        let prefix = env.prefix();
        let body = body.to_string();
        tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .arg(root.join("scripts/contract-tools.sh"))
                .arg("python")
                .arg(root.join("tools/pika-client/client.py"))
                .args([
                    "--asyncapi",
                    &root.join("shared/contracts/asyncapi.json").to_string_lossy(),
                ])
                .args([
                    "--url",
                    &testkit::amqp_url(),
                    "--prefix",
                    &prefix,
                    "--line",
                    "medical",
                ])
                .args(["--send", "send.enrollment.enroll-person"])
                .args(["--receive", "receive.enrollment.person-enrolled.v1"])
                .args(["--body", &body, "--match", "id_number", "--wait", "30"])
                .output()
                .expect("bash runs")
        })
    };
    let out = run.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the outside client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["reply"]["status"], "ok");
    assert_eq!(result["event"]["type"], "enrollment.person-enrolled.v1");
    assert_eq!(
        result["event"]["routing_key"],
        "medical.enrollment.person-enrolled"
    );
    assert_eq!(result["event"]["body"]["id_number"], id);
    assert_eq!(
        result["checked"],
        serde_json::json!([
            "command payload",
            "command headers",
            "reply payload",
            "event headers",
            "event payload"
        ])
    );

    // And the service agrees: the person is there, once.
    let db = env.pool("enrollment").await.get().await.unwrap();
    let n: i64 = db
        .query_one("select count(*) from persons where id_number = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    app.stop().await;
}

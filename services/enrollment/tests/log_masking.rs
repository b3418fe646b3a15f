//! Log lines never carry a full ID or phone number.

mod common;

use contracts::Line;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use testkit::{TestEnv, id_number, send};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Its own test binary with a process-wide subscriber: tracing caches per call site whether
/// anyone listens, so a thread-local subscriber would miss lines from call sites that tests on
/// other threads reached first.
#[tokio::test]
async fn log_lines_mask_id_and_phone_numbers() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug,lapin=warn,tokio_postgres=warn,amq_protocol=warn,hyper=warn")
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber in this binary");

    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let id = id_number(42);
    let phone = "13812345678";
    let enroll = json!({"id_number": id, "name": "张三", "phone": phone, "category": "flexible",
                        "insurance_types": ["employee_medical"], "effective_month": "2024-01"});
    assert!(
        send(
            &client,
            Line::Medical,
            "enrollment",
            "enroll-person",
            enroll.clone()
        )
        .await
        .is_ok()
    );
    // A conflict whose message names the person.
    let r = send(&client, Line::Medical, "enrollment", "enroll-person", enroll).await;
    assert!(
        r.error
            .as_ref()
            .unwrap()
            .message
            .contains(&format!("{}**********{}", &id[..4], &id[14..])),
        "{r:?}"
    );
    let r = send(
        &client,
        Line::Medical,
        "enrollment",
        "change-contact",
        json!({"id_number": id, "phone": "13900009999"}),
    )
    .await;
    assert!(r.is_ok());
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("person enrolled"),
        "the service logged its work: {logs}"
    );
    assert!(logs.contains("command rejected"), "{logs}");
    for secret in [id.as_str(), phone, "13900009999"] {
        assert!(!logs.contains(secret), "a log line leaks {secret}:\n{logs}");
    }
}

//! What operators see: the ops endpoints, and log lines that never carry a full ID or phone
//! number.

mod common;

use contracts::Line;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use testkit::{TestEnv, id_number, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split(' ').nth(1).unwrap().parse().unwrap();
    (status, buf)
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let r = send(
        &client,
        Line::Medical,
        "enrollment",
        "get-person",
        json!({"id_number": id_number(1)}),
    )
    .await;
    assert!(!r.is_ok());
    assert_eq!(http_get(app.ops, "/healthz").await.0, 200);
    let (status, body) = http_get(app.ops, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(app.ops, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("messages_consumed_total"), "{body}");
    assert!(body.contains("handler_seconds"), "{body}");
    app.stop().await;
}

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

/// The default `tokio::test` runtime is single-threaded, so a thread-local subscriber sees
/// every log line the service writes while handling these commands.
#[tokio::test]
async fn log_lines_mask_id_and_phone_numbers() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug,lapin=warn,tokio_postgres=warn,amq_protocol=warn,hyper=warn")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

//! What operators see: the ops endpoints and trace context across hops.

mod common;

use contracts::Line;
use serde_json::json;
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
    // The reply goes out before the consumer records the message's metrics: wait for them.
    let body = testkit::wait_for("the consumed message in /metrics", testkit::WAIT, || async {
        let (status, body) = http_get(app.ops, "/metrics").await;
        (status == 200 && body.contains("messages_consumed_total")).then_some(body)
    })
    .await;
    assert!(body.contains("handler_seconds"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_commands_trace_id_reaches_the_events_it_causes() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let mut tap = env.tap("#").await;
    let client = env.client().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = std::collections::BTreeMap::new();
    headers.insert(
        "traceparent".to_owned(),
        format!("00-{trace}-00f067aa0ba902b7-01"),
    );
    let props = messaging::envelope::properties(
        uuid::Uuid::now_v7(),
        "enrollment.enroll-person.v1",
        None,
        None,
        "test",
        headers,
    );
    let body = json!({"id_number": id_number(9), "name": "吴九", "phone": "13812345678", "category": "flexible",
                      "insurance_types": ["employee_medical"], "effective_month": "2024-01"});
    let reply = client
        .send_raw(
            "medical.enrollment.enroll-person",
            props,
            body.to_string().as_bytes(),
            testkit::WAIT,
        )
        .await
        .unwrap();
    assert!(reply.is_ok(), "{reply:?}");
    let event = tap.expect("medical.enrollment.person-enrolled").await;
    let tp = event
        .headers
        .get("traceparent")
        .expect("the event carries trace context");
    assert_eq!(messaging::trace::trace_id(tp), Some(trace));
    app.stop().await;
}

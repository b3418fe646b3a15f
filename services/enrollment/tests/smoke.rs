mod common;

use contracts::Line;
use serde_json::json;
use testkit::{TestEnv, send};

#[tokio::test]
async fn enroll_a_flexible_worker_end_to_end() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let mut tap = env.tap("#").await;
    let client = env.client().await;
    let id = testkit::id_number(1);
    let reply = send(
        &client,
        Line::Medical,
        "enrollment",
        "enroll-person",
        json!({
            "id_number": id, "name": "张三", "phone": "13812345678", "category": "flexible",
            "insurance_types": ["employee_medical"], "effective_month": "2024-01"
        }),
    )
    .await;
    assert!(reply.is_ok(), "{reply:?}");
    let event = tap.expect("medical.enrollment.person-enrolled").await;
    assert_eq!(event.body["id_number"], id);
    app.stop().await;
}

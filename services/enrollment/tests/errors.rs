//! Every validation code, sent through the broker; after each rejection nothing changed.

mod common;

use contracts::{ErrorCode, Line, ReplyStatus};
use messaging::client::Command;
use serde_json::{Value, json};
use testkit::{TestEnv, WAIT, credit_code, id_number, send, send_command};

const SVC: &str = "enrollment";

fn enroll(id: &str, types: &[&str], category: &str) -> Value {
    json!({"id_number": id, "name": "周八", "phone": "13812345678", "category": category,
           "insurance_types": types, "effective_month": "2024-01"})
}

async fn counts(db: &deadpool_postgres::Object) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "persons",
        "employers",
        "employer_lines",
        "enrollments",
        "history",
        "certificates",
        "outbox",
    ] {
        out.push(
            db.query_one(&format!("select count(*) from {t}"), &[])
                .await
                .unwrap()
                .get(0),
        );
    }
    out
}

#[tokio::test]
async fn every_error_code_is_specific_and_changes_nothing() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let client = env.client().await;
    let pool = env.pool("enrollment").await;
    let db = pool.get().await.unwrap();

    // Some state to conflict with.
    let known = id_number(500);
    let employer = credit_code(500);
    assert!(
        send(
            &client,
            Line::Medical,
            SVC,
            "enroll-person",
            enroll(&known, &["employee_medical"], "flexible")
        )
        .await
        .is_ok()
    );
    assert!(
        send(
            &client,
            Line::Medical,
            SVC,
            "register-employer",
            json!({
        "credit_code": employer, "name": "单位", "contact": {"name": "联系人", "phone": "13900001111"}})
        )
        .await
        .is_ok()
    );
    let before = counts(&db).await;

    let unknown = id_number(501);
    let mut bad_check = id_number(502);
    bad_check.replace_range(17.., if bad_check.ends_with('0') { "1" } else { "0" });
    let cases: Vec<(Line, &str, Value, ErrorCode, Option<&str>)> = vec![
        (
            Line::Medical,
            "enroll-person",
            json!({"id_number": 42}),
            ErrorCode::MalformedMessage,
            None,
        ),
        (
            Line::Medical,
            "enroll-person",
            json!({"unexpected": true}),
            ErrorCode::MalformedMessage,
            None,
        ),
        (
            Line::Medical,
            "enrol-person",
            enroll(&unknown, &["employee_medical"], "flexible"),
            ErrorCode::UnknownCommand,
            None,
        ),
        (
            Line::Medical,
            "enroll-person",
            enroll(&bad_check, &["employee_medical"], "flexible"),
            ErrorCode::InvalidIdNumber,
            Some("id_number"),
        ),
        (
            Line::Medical,
            "enroll-person",
            enroll("110105194902300021", &["employee_medical"], "flexible"),
            ErrorCode::InvalidIdNumber,
            Some("id_number"),
        ),
        (
            Line::Medical,
            "enroll-person",
            enroll(&unknown, &["pension"], "flexible"),
            ErrorCode::InvalidField,
            Some("insurance_types"),
        ),
        (
            Line::Social,
            "enroll-person",
            enroll(&unknown, &["employee_medical"], "flexible"),
            ErrorCode::InvalidField,
            Some("insurance_types"),
        ),
        (
            Line::Medical,
            "enroll-person",
            json!({"id_number": unknown, "name": "周八", "phone": "12345", "category": "flexible",
                   "insurance_types": ["employee_medical"], "effective_month": "2024-01"}),
            ErrorCode::InvalidField,
            Some("phone"),
        ),
        (
            Line::Medical,
            "enroll-person",
            json!({"id_number": unknown, "name": "周八", "phone": "13812345678", "category": "flexible",
                   "insurance_types": ["employee_medical"], "effective_month": "2024-1"}),
            ErrorCode::InvalidField,
            Some("effective_month"),
        ),
        (
            Line::Medical,
            "register-employer",
            json!({"credit_code": "91420100000000000X", "name": "单位", "contact": {"name": "联系人", "phone": "13900001111"}}),
            ErrorCode::InvalidCreditCode,
            Some("credit_code"),
        ),
        (
            Line::Medical,
            "enroll-person",
            json!({"id_number": unknown, "name": "周八", "phone": "13812345678", "category": "employee",
                   "insurance_types": ["employee_medical"], "employer_credit_code": credit_code(999), "effective_month": "2024-01"}),
            ErrorCode::NotFound,
            Some("employer_credit_code"),
        ),
        (
            Line::Medical,
            "get-person",
            json!({"id_number": unknown}),
            ErrorCode::NotFound,
            Some("id_number"),
        ),
        (
            Line::Medical,
            "suspend",
            json!({"id_number": unknown, "insurance_types": ["employee_medical"], "reason": "x", "month": "2024-02"}),
            ErrorCode::NotFound,
            Some("id_number"),
        ),
        (
            Line::Medical,
            "enroll-person",
            enroll(&known, &["employee_medical"], "flexible"),
            ErrorCode::Conflict,
            Some("insurance_types"),
        ),
        (
            Line::Medical,
            "register-employer",
            json!({"credit_code": employer, "name": "单位", "contact": {"name": "联系人", "phone": "13900001111"}}),
            ErrorCode::Conflict,
            Some("credit_code"),
        ),
        (
            Line::Medical,
            "terminate",
            json!({"id_number": known, "insurance_types": ["large_amount_medical"], "reason": "x", "month": "2024-02"}),
            ErrorCode::NotFound,
            Some("insurance_types"),
        ),
        (
            Line::Medical,
            "add-staff",
            json!({"employer_credit_code": employer, "persons": [{"id_number": known}], "insurance_types": ["employee_medical"], "month": "2024-02"}),
            ErrorCode::Conflict,
            Some("persons[0].id_number"),
        ),
        (
            Line::Medical,
            "add-staff",
            json!({"employer_credit_code": employer, "persons": [{"id_number": unknown}], "insurance_types": ["employee_medical"], "month": "2024-02"}),
            ErrorCode::InvalidField,
            Some("persons[0].name"),
        ),
        (
            Line::Social,
            "add-staff",
            json!({"employer_credit_code": employer, "persons": [{"id_number": known}], "insurance_types": ["pension"], "month": "2024-02"}),
            ErrorCode::NotFound,
            Some("employer_credit_code"),
        ),
        (
            Line::Medical,
            "change-contact",
            json!({"id_number": known}),
            ErrorCode::InvalidField,
            Some("name"),
        ),
        (
            Line::Medical,
            "change-contact",
            json!({"id_number": known, "bank_account": "12ab"}),
            ErrorCode::InvalidField,
            Some("bank_account"),
        ),
        (
            Line::Medical,
            "transfer-out",
            json!({"id_number": known, "insurance_types": ["employee_medical"], "to_region": "420100"}),
            ErrorCode::InvalidField,
            Some("to_region"),
        ),
        (
            Line::Medical,
            "transfer-in",
            json!({
            "certificate": {"certificate_id": "01900000-0000-7000-8000-000000000002", "id_number": unknown, "name": "周八",
                "insurance_types": ["employee_medical"], "from_region": "330100", "to_region": "310000",
                "contribution_history_ref": "x", "issued_at": "2024-05-01T10:00:00+08:00"},
            "phone": "13812345678", "category": "flexible", "effective_month": "2024-06"}),
            ErrorCode::InvalidField,
            Some("certificate.to_region"),
        ),
    ];
    for (line, name, body, code, field) in cases {
        let reply = send(&client, line, SVC, name, body.clone()).await;
        assert_eq!(reply.status, ReplyStatus::Rejected, "{name} {body} -> {reply:?}");
        let err = reply.error.as_ref().unwrap();
        assert_eq!(err.code, code, "{name} {body} -> {err}");
        assert_eq!(err.field.as_deref(), field, "{name} {body} -> {err}");
        assert!(!err.message.is_empty());
        assert!(
            !err.message.contains(&unknown),
            "messages mask ID numbers: {}",
            err.message
        );
    }

    // Not JSON at all: parked, and the sender still hears why.
    let mut cmd = Command::new(Line::Medical, SVC, "enroll-person", &json!({}));
    cmd.body = b"{not json".to_vec();
    let reply = send_command(&client, &cmd, WAIT).await.unwrap();
    assert_eq!(reply.error_code(), Some(ErrorCode::MalformedMessage), "{reply:?}");

    assert_eq!(counts(&db).await, before, "a rejected command changes nothing");
    app.stop().await;
}

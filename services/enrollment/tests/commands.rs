//! Every enrollment command's success path, through the broker as a back-office system
//! would send it, with the events each publishes and the history it leaves.

mod common;

use contracts::{Line, ReplyStatus};
use serde_json::json;
use testkit::{TestEnv, WAIT, credit_code, id_number, send};

const SVC: &str = "enrollment";

#[tokio::test]
async fn an_employer_and_its_staff_through_their_whole_lifecycle() {
    let env = TestEnv::new();
    let app = common::spawn(&env).await;
    let mut tap = env.tap("#").await;
    let client = env.client().await;
    let employer = credit_code(7);

    // register-employer, on each line separately (the split of the lines).
    for line in [Line::Medical, Line::Social] {
        let r = send(
            &client,
            line,
            SVC,
            "register-employer",
            json!({
                "credit_code": employer, "name": "武汉示例科技有限公司",
                "contact": {"name": "李四", "phone": "13900001111"}
            }),
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(r.result.as_ref().unwrap()["credit_code"], employer);
        let ev = tap
            .expect(&format!("{line}.enrollment.employer-registered"))
            .await;
        assert_eq!(ev.body["line"], line.as_str());
    }

    // enroll-person: an employee on the medical line.
    let alice = id_number(100);
    let r = send(
        &client,
        Line::Medical,
        SVC,
        "enroll-person",
        json!({
            "id_number": alice, "name": "王芳", "phone": "13812345678", "category": "employee",
            "insurance_types": ["employee_medical", "large_amount_medical"],
            "employer_credit_code": employer, "effective_month": "2024-01"
        }),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let result = r.result.unwrap();
    assert_eq!(result["enrollments"].as_array().unwrap().len(), 2);
    assert_eq!(result["enrollments"][0]["status"], "active");
    let ev = tap.expect("medical.enrollment.person-enrolled").await;
    assert_eq!(ev.body["id_number"], alice);
    assert_eq!(
        ev.body["insurance_types"],
        json!(["employee_medical", "large_amount_medical"])
    );
    assert_eq!(ev.message_type, "enrollment.person-enrolled.v1");
    assert_eq!(
        ev.headers.get("ce-type").map(String::as_str),
        Some("enrollment.person-enrolled.v1")
    );
    assert_eq!(ev.headers.get("x-channel").map(String::as_str), Some("counter"));

    // add-staff on the social line: a new person, registered by the declaration itself.
    let bob = id_number(101);
    let r = send(
        &client,
        Line::Social,
        SVC,
        "add-staff",
        json!({
            "employer_credit_code": employer,
            "persons": [{"id_number": bob, "name": "赵六", "phone": "13700002222"}, {"id_number": alice}],
            "insurance_types": ["pension", "unemployment", "work_injury"], "month": "2024-02"
        }),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let ev = tap.expect("social.enrollment.staff-added").await;
    assert_eq!(ev.body["persons"].as_array().unwrap().len(), 2);

    // remove-staff: bob leaves; his social enrollments are suspended.
    let r = send(&client, Line::Social, SVC, "remove-staff", json!({
        "employer_credit_code": employer, "id_numbers": [bob],
        "insurance_types": ["pension", "unemployment", "work_injury"], "month": "2024-06", "reason": "合同到期"
    }))
    .await;
    assert!(r.is_ok(), "{r:?}");
    tap.expect("social.enrollment.staff-removed").await;

    // suspend, then terminate, alice's large-amount medical.
    let r = send(&client, Line::Medical, SVC, "suspend", json!({
        "id_number": alice, "insurance_types": ["large_amount_medical"], "reason": "停保申请", "month": "2024-07"
    }))
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["enrollments"][0]["status"],
        "suspended",
        "{r:?}"
    );
    tap.expect("medical.enrollment.enrollment-suspended").await;
    let r = send(&client, Line::Medical, SVC, "terminate", json!({
        "id_number": alice, "insurance_types": ["large_amount_medical"], "reason": "终止", "month": "2024-08"
    }))
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["enrollments"][0]["status"],
        "terminated",
        "{r:?}"
    );
    tap.expect("medical.enrollment.enrollment-terminated").await;

    // change-contact: published once on each line alice is enrolled on.
    let r = send(
        &client,
        Line::Medical,
        SVC,
        "change-contact",
        json!({
            "id_number": alice, "phone": "13600003333", "bank_account": "6222021234567890123"
        }),
    )
    .await;
    assert_eq!(
        r.result.as_ref().unwrap()["changed"],
        json!(["phone", "bank_account"]),
        "{r:?}"
    );
    // One event per line; each line has its own relay, so they may arrive in either order.
    let mut changed = Vec::new();
    while changed.len() < 2 {
        let e = tap.next(WAIT).await.expect("both contact-changed events");
        if e.routing_key.ends_with(".enrollment.contact-changed") {
            changed.push(e);
        }
    }
    changed.sort_by(|x, y| x.routing_key.cmp(&y.routing_key));
    let keys: Vec<&str> = changed.iter().map(|e| e.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "medical.enrollment.contact-changed",
            "social.enrollment.contact-changed"
        ]
    );
    assert_eq!(changed[0].body["phone"], "13600003333");
    assert_eq!(changed[1].body["line"], "social");

    // transfer-out: alice moves to Hangzhou with her social insurance.
    let r = send(
        &client,
        Line::Social,
        SVC,
        "transfer-out",
        json!({
            "id_number": alice, "insurance_types": ["pension", "unemployment"], "to_region": "330100"
        }),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let cert = r.result.unwrap();
    assert_eq!(cert["from_region"], common::REGION);
    assert_eq!(cert["to_region"], "330100");
    assert!(
        cert["contribution_history_ref"]
            .as_str()
            .unwrap()
            .contains("types=pension,unemployment")
    );
    let ev = tap.expect("social.enrollment.transferred-out").await;
    assert_eq!(ev.body["certificate"]["certificate_id"], cert["certificate_id"]);

    // transfer-in: someone arrives from Hangzhou with a certificate issued there.
    let carol = id_number(102);
    let r = send(&client, Line::Social, SVC, "transfer-in", json!({
        "certificate": {
            "certificate_id": "01900000-0000-7000-8000-000000000001", "id_number": carol, "name": "孙七",
            "insurance_types": ["pension"], "from_region": "330100", "to_region": "420100",
            "contribution_history_ref": "hangzhou/contribution-history/123", "issued_at": "2024-05-01T10:00:00+08:00"
        },
        "phone": "13500004444", "category": "flexible", "effective_month": "2024-06"
    }))
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        r.result.as_ref().unwrap()["enrollments"][0]["insurance_type"],
        "pension"
    );
    tap.expect("social.enrollment.transferred-in").await;

    // get-person: status per insurance type and every version, with channel and reason.
    let r = send(
        &client,
        Line::Medical,
        SVC,
        "get-person",
        json!({"id_number": alice}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let p = r.result.unwrap();
    assert_eq!(p["phone"], "13600003333");
    let status = |t: &str| {
        p["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["insurance_type"] == t)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("employee_medical"), "active");
    assert_eq!(status("large_amount_medical"), "terminated");
    assert_eq!(status("pension"), "terminated");
    assert_eq!(status("work_injury"), "active");
    let changes: Vec<&str> = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        [
            "enrolled",
            "staff-added",
            "suspended",
            "terminated",
            "contact-changed",
            "transferred-out"
        ]
    );
    let versions: Vec<i64> = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(p["history"][0]["channel"], "counter");
    assert_eq!(
        p["history"][0]["snapshot"]["phone"], "13812345678",
        "old versions keep the old phone"
    );
    assert_eq!(p["history"][2]["reason"], "停保申请");

    // History is append-only, enforced by the database itself.
    let pool = env.pool("enrollment").await;
    let db = pool.get().await.unwrap();
    let err = db
        .execute("update history set change = 'x'", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
        "{err:?}"
    );

    // Nothing left to publish.
    testkit::wait_for("outbox drained", testkit::WAIT, || async {
        let n: i64 = db
            .query_one("select count(*) from outbox where published_at is null", &[])
            .await
            .ok()?
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    assert_eq!(r.status, ReplyStatus::Ok);
    app.stop().await;
}

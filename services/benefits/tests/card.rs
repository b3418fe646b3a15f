//! Inpatient registration and the social security card (issue 11 §3, Baotou): benefits learns
//! each card's state from card issuance's events only. A patient whose card is still being
//! made is admitted by the old procedure; one whose application failed is refused with what
//! to do; one of whom card issuance knows nothing is admitted, and the reply says so.

mod common;

use common::*;
use contracts::{ErrorCode, Line};
use serde_json::{Value, json};
use testkit::{TestEnv, WAIT, id_number, send, wait_for};

const CARD: &str = "card-issuance";

async fn card(client: &messaging::client::CommandClient, name: &str, body: Value) -> Value {
    let r = send(client, Line::Common, CARD, name, body).await;
    assert!(r.is_ok(), "{name}: {r:?}");
    r.result.expect("a result")
}

fn admission(msgid: &str, psn: &str, id: &str) -> Value {
    json!({"msgid": msgid, "fixmedins_code": H3, "psn_no": psn, "insutype": "310",
           "mdtrt_cert_type": "02", "mdtrt_cert_no": id, "ipt_otp_no": format!("ZY-{msgid}"),
           "begntime": "2024-05-10 09:00:00", "self_pay": true})
}

#[tokio::test]
async fn admission_follows_the_card_in_production_failed_or_unknown() {
    let env = TestEnv::new();
    let mut services = spawn(&env).await;
    let card_app = card_issuance::build(card_issuance::Settings {
        service: env.service_settings(CARD),
    })
    .await
    .expect("card issuance builds");
    services.start(&env, card_app);
    let client = env.client().await;
    let types = json!(["employee_medical"]);
    let (making, failed, unknown) = (id_number(810), id_number(811), id_number(812));
    let mut psn = Vec::new();
    for id in [&making, &failed, &unknown] {
        psn.push(enroll(&client, id, "flexible", None, "2024-05", types.clone()).await);
    }
    // Card issuance learns of the persons from enrollment's events.
    for id in [&making, &failed] {
        wait_for("card issuance knows the person", WAIT, || async {
            send(
                &client,
                Line::Common,
                CARD,
                "apply-card",
                json!({"id_number": id, "bank": "ICBC"}),
            )
            .await
            .is_ok()
            .then_some(())
        })
        .await;
    }
    // Photo approved: the bank account is being opened (no bank runs here, so it stays so).
    let s = card(
        &client,
        "review-photo",
        json!({"id_number": making, "approved": true}),
    )
    .await;
    assert_eq!(s["colour"], "orange", "{s}");
    // Photo rejected: the application failed, action needed.
    let s = card(
        &client,
        "review-photo",
        json!({"id_number": failed, "approved": false, "reason": "照片背景不符合要求"}),
    )
    .await;
    assert_eq!(s["state"], "failed", "{s}");

    let bdb = env.pool(B).await.get().await.expect("db");
    wait_for("benefits knows both cards", WAIT, || async {
        let n: i64 = bdb
            .query_one(
                "select count(*) from card_status where state in ('failed') or in_production",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (n == 2).then_some(())
    })
    .await;

    let admitted = ok(&client, "admit", admission("A-810", &psn[0], &making)).await;
    let note = admitted.to_string();
    assert!(note.contains("in production"), "the old procedure: {admitted}");

    let r = cmd(&client, B, "admit", admission("A-811", &psn[1], &failed)).await;
    let e = r
        .error
        .clone()
        .unwrap_or_else(|| panic!("admitted with a failed card: {r:?}"));
    assert_eq!(e.code, ErrorCode::NotEligible, "{r:?}");
    assert!(e.message.contains("failed"), "{}", e.message);
    assert_eq!(e.field.as_deref(), Some("mdtrt_cert_no"));

    let admitted = ok(&client, "admit", admission("A-812", &psn[2], &unknown)).await;
    assert!(
        admitted
            .to_string()
            .contains("no social security card information"),
        "{admitted}"
    );

    client.close().await;
    services.stop().await;
}

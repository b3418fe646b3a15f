//! `insurancectl freeze …` and `receipt show` against enrollment and collection running in
//! process on the real broker and database: an order reaches both services and each answers;
//! `status` and `list` show it; a counter request gets a receipt that `receipt show` follows
//! from held to processed across the lift; wrong ids are refused by the services.

mod common;

use common::{WUHAN, both_listening, ctl, exit, json, spawn, text};
use testkit::{TestEnv, WAIT, wait_for};

#[tokio::test]
async fn an_order_reaches_every_service_and_a_receipt_is_followed_to_its_outcome() {
    let env = TestEnv::new();
    let services = spawn(&env).await;
    both_listening(&env).await;

    // One order from the command line; both services store it and say so.
    let out = ctl(
        &env,
        &[
            "freeze",
            "order",
            "--id",
            "t-medical-counter",
            "--mode",
            "intake-only",
            "--lines",
            "medical",
            "--channels",
            "counter",
            "--operations",
            "registration",
            "--reason",
            "cutover drill",
            "--announcement",
            "医保系统切换，柜台收件。咨询电话：027-87812393",
        ],
    )
    .await;
    let stdout = exit(&out, 0);
    assert!(stdout.contains("enrollment     new"), "{stdout}");
    assert!(stdout.contains("collection     new"), "{stdout}");

    // The same order again changes nothing.
    let again = ctl(
        &env,
        &[
            "--json",
            "freeze",
            "--to",
            "enrollment",
            "order",
            "--id",
            "t-medical-counter",
            "--mode",
            "intake-only",
            "--lines",
            "medical",
            "--channels",
            "counter",
            "--operations",
            "registration",
            "--reason",
            "cutover drill",
            "--announcement",
            "医保系统切换，柜台收件。咨询电话：027-87812393",
            "--starts-at",
            "2020-01-01 00:00",
        ],
    )
    .await;
    exit(&again, 0);
    assert_eq!(
        json(&again)["answers"].as_object().unwrap().len(),
        1,
        "only enrollment was asked"
    );

    // A counter enrollment on the medical line gets a receipt.
    let body = serde_json::json!({
        "id_number": testkit::id_number(7), "name": "参保人7", "phone": testkit::phone(7),
        "category": "flexible", "insurance_types": ["employee_medical"], "effective_month": "2024-03"
    })
    .to_string();
    let deferred = wait_for("a deferred reply at the counter", WAIT, || async {
        let out = ctl(
            &env,
            &[
                "--json",
                "send",
                "medical",
                "enrollment",
                "enroll-person",
                "--body",
                &body,
            ],
        )
        .await;
        let v = json(&out);
        (v["status"] == "deferred").then_some(v)
    })
    .await;
    let receipt = deferred["receipt"]["id"]
        .as_str()
        .expect("a receipt id")
        .to_owned();

    // Status: enrollment's medical line holds one request; the social line is open.
    let status = json(&ctl(&env, &["--json", "freeze", "status"]).await);
    let enrollment = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "enrollment")
        .expect("enrollment answered status");
    let line = |l: &str| {
        enrollment["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["line"] == l)
            .cloned()
            .unwrap()
    };
    assert_eq!(line("medical")["backlog"], 1, "{status}");
    assert_eq!(line("medical")["orders_in_force"][0], "t-medical-counter");
    assert_eq!(line("social")["mode"], "open", "{status}");
    let people = exit(&ctl(&env, &["freeze", "status"]).await, 0);
    assert!(
        people.contains("enrollment") && people.contains("backlog 1"),
        "{people}"
    );

    let list = exit(&ctl(&env, &["freeze", "list"]).await, 0);
    assert!(
        list.contains("t-medical-counter  intake-only")
            && list.contains("collection in-force, enrollment in-force"),
        "{list}"
    );

    let held = ctl(&env, &["receipt", "show", &receipt]).await;
    let held = exit(&held, 0);
    assert!(held.contains(&format!("receipt {receipt}  held")), "{held}");
    assert!(held.contains("medical.enrollment.enroll-person"), "{held}");
    assert!(
        held.contains("held by order t-medical-counter on the medical line of enrollment"),
        "{held}"
    );

    // Lift: the held enrollment is processed and the receipt shows its outcome.
    let lifted = exit(&ctl(&env, &["freeze", "lift", "t-medical-counter"]).await, 0);
    assert!(
        lifted.contains("enrollment     lifted") && lifted.contains("collection     lifted"),
        "{lifted}"
    );
    let done = wait_for("the receipt processed", WAIT, || async {
        let v = json(&ctl(&env, &["--json", "receipt", "show", &receipt]).await);
        (v["state"] == "processed").then_some(v)
    })
    .await;
    assert_eq!(done["reply"]["status"], "ok", "{done}");
    assert_eq!(done["line"], "medical");
    assert!(done["reply"]["result"]["person_id"].is_string(), "{done}");

    let show = exit(&ctl(&env, &["freeze", "show", "t-medical-counter"]).await, 0);
    assert!(
        show.contains("enrollment     lifted at") && show.contains("027-87812393"),
        "{show}"
    );

    // Wrong ids: the services say so, and the tool exits 2 (the service said no) or 1.
    let nope = ctl(&env, &["freeze", "lift", "no-such-order"]).await;
    let stdout = exit(&nope, 2);
    assert!(
        stdout.contains("NOT_FOUND") && stdout.contains("no freeze order 'no-such-order'"),
        "{stdout}"
    );
    let bad = ctl(&env, &["receipt", "show", "not-a-uuid"]).await;
    exit(&bad, 2);
    assert_eq!(
        text(&bad.stderr),
        "error: INVALID_FIELD  field id: 'not-a-uuid' is not a receipt id (a UUID)\n"
    );
    let unknown = ctl(&env, &["receipt", "show", &uuid::Uuid::now_v7().to_string()]).await;
    exit(&unknown, 2);
    assert!(
        text(&unknown.stderr).contains("no service holds receipt"),
        "{}",
        text(&unknown.stderr)
    );

    services.stop().await;
}

#[tokio::test]
async fn the_wuhan_timetable_is_planned_on_every_service_and_its_open_ended_orders_hold_until_lifted() {
    let env = TestEnv::new();
    let dry = ctl(&env, &["freeze", "plan", WUHAN, "--dry-run"]).await;
    let dry = exit(&dry, 0);
    assert!(
        dry.contains("timetable wuhan-2021 (7 orders; times CST)"),
        "{dry}"
    );
    assert!(
        dry.contains("wuhan-2021-tax-bank-collection  suspended  2021-12-15 00:00 → 另行通知"),
        "{dry}"
    );
    assert!(dry.contains("nothing was sent"), "{dry}");

    let services = spawn(&env).await;
    both_listening(&env).await;
    let planned = exit(&ctl(&env, &["freeze", "plan", WUHAN]).await, 0);
    assert_eq!(planned.matches("enrollment     new").count(), 7, "{planned}");
    assert_eq!(planned.matches("collection     new").count(), 7, "{planned}");

    // Today, years after 2021, the settlement stop has ended and the open-ended orders hold.
    let list = json(&ctl(&env, &["--json", "freeze", "list"]).await);
    assert_eq!(
        list["wuhan-2021-medical-settlement"]["enrollment"]["state"], "ended",
        "{list}"
    );
    assert_eq!(
        list["wuhan-2021-social-business"]["collection"]["state"], "in-force",
        "{list}"
    );

    // The social line at the counter is suspended with the announcement and no resume time.
    let body = serde_json::json!({
        "id_number": testkit::id_number(8), "name": "参保人8", "phone": testkit::phone(8),
        "category": "flexible", "insurance_types": ["pension"], "effective_month": "2024-03"
    })
    .to_string();
    let out = ctl(
        &env,
        &[
            "--json",
            "send",
            "social",
            "enrollment",
            "enroll-person",
            "--body",
            &body,
        ],
    )
    .await;
    exit(&out, 2);
    let reply = json(&out);
    assert_eq!(reply["status"], "suspended", "{reply}");
    assert_eq!(reply["result"]["order"], "wuhan-2021-social-business");
    assert!(reply["result"]["resumes_at"].is_null());
    assert!(
        reply["result"]["announcement"]
            .as_str()
            .unwrap()
            .contains("027-12333")
    );

    // The agency announces the resumption: each open-ended order is lifted.
    for id in [
        "wuhan-2021-resident-medical",
        "wuhan-2021-social-arrears-back-payment",
        "wuhan-2021-tax-bank-collection",
        "wuhan-2021-employee-medical",
        "wuhan-2021-social-business",
    ] {
        exit(&ctl(&env, &["freeze", "lift", id]).await, 0);
    }
    let ok = wait_for("the social line open again", WAIT, || async {
        let out = ctl(
            &env,
            &[
                "--json",
                "send",
                "social",
                "enrollment",
                "enroll-person",
                "--body",
                &body,
            ],
        )
        .await;
        let v = json(&out);
        (v["status"] == "ok").then_some(v)
    })
    .await;
    assert!(ok["result"]["person_id"].is_string());

    services.stop().await;
}

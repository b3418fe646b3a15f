//! `make run`'s demo (scripts/demo.sh) against enrollment and collection in process, on the
//! test's own prefix: the day at the agency, then the medical counter frozen intake-only, a
//! receipt, the social line working, and the thaw processing what was held.

mod common;

use testkit::TestEnv;

#[tokio::test]
async fn the_demo_freezes_the_medical_counter_and_thaws_it() {
    let env = TestEnv::new();
    let services = common::spawn(&env).await;
    common::both_listening(&env).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/demo.sh");
    let run = tokio::process::Command::new("bash")
        .arg(script)
        .env("CTL", env!("CARGO_BIN_EXE_insurancectl"))
        .env("AMQP_URL", testkit::amqp_url())
        .env("INSURANCE_PREFIX", env.prefix())
        // No tax-authority simulator here: do not wait for its payment.
        .env("DEMO_PAYMENT_WAIT", "0")
        // Nor benefits: no hospital day.
        .env("DEMO_HOSPITAL", "0")
        // Nor card issuance and the bank: no card, claim or pension run.
        .env("DEMO_CLAIM", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the demo finishes within 2 minutes")
        .expect("bash runs");
    let stdout = common::text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\nstderr:\n{}",
        common::text(&out.stderr)
    );
    let after = |marker: &str| -> &str {
        let at = stdout
            .find(marker)
            .unwrap_or_else(|| panic!("no '{marker}' in:\n{stdout}"));
        &stdout[at..]
    };
    let frozen = after("[demo] At the medical counter");
    assert!(frozen.contains(r#""status":"deferred""#), "{frozen}");
    let social = after("[demo] Meanwhile the social line");
    assert!(social.contains("ok  social.enrollment.enroll-person"), "{social}");
    let held = after("[demo] The receipt, while the line is frozen");
    assert!(held.contains("  held"), "{held}");
    let thawed = after("[demo] Thaw");
    assert!(!thawed.contains("not processed yet"), "{thawed}");
    assert!(thawed.contains("  processed"), "{thawed}");
    assert!(thawed.contains("outcome    ok"), "{thawed}");
    let erin = after("[demo] Erin, as the medical line knows her");
    assert!(erin.contains(r#""insurance_type": "employee_medical""#), "{erin}");
    assert!(stdout.contains("[demo] done"), "{stdout}");
    services.stop().await;
}

//! The deployment files, validated offline (issue 13 §3, §4): `scripts/deploy-check.sh` checks
//! docker-compose.yml against the Compose specification, the Dockerfile with hadolint, and
//! every object of both Kustomize overlays against the Kubernetes and the operators' CRD
//! schemas with the properties asked of each Deployment, and the topology files against
//! `insurancectl topology export`; `--self-test` proves that broken copies of those files
//! fail. The script installs its own tools (under a lock) the first time.

use std::path::Path;
use std::process::{Command, Output};

fn deploy_check(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Command::new("bash")
        .arg(root.join("scripts/deploy-check.sh"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("bash runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_compose_file_the_dockerfile_and_both_overlays_validate() {
    let out = deploy_check(&[]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "deploy-check failed:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("deploy-check: all checks passed"), "{stdout}");
    for step in [
        "ok   docker-compose.yml: Compose specification schema",
        "ok   Dockerfile: hadolint",
        "ok   k8s/overlays/dev: kustomize build",
        "ok   k8s/overlays/production: kustomize build",
        "ok   k8s/cutover-example: kustomize build",
        "ok   topology.yaml and compose definitions match insurancectl topology export",
    ] {
        assert!(stdout.contains(step), "no '{step}' in:\n{stdout}");
    }
}

#[test]
fn the_self_test_sees_every_broken_copy_fail() {
    let out = deploy_check(&["--self-test"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "deploy-check --self-test failed:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("self-test: the unchanged copy passes"),
        "{stdout}"
    );
    for caught in [
        "self-test caught: a Deployment without a readiness probe",
        "self-test caught: a compose service with an unknown key",
        "self-test caught: a Dockerfile whose runtime runs as root",
        "self-test caught: a CloudNativePG Cluster off its CRD schema",
        "self-test caught: a hand-edited topology.yaml",
        "self-test caught: hand-edited compose definitions",
    ] {
        assert!(stdout.contains(caught), "no '{caught}' in:\n{stdout}");
    }
    assert!(
        stdout.contains("self-test: every broken copy failed as it should"),
        "{stdout}"
    );
}

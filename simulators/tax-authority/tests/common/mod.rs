//! What the simulator's end-to-end tests share: the two services it talks to, and the
//! operator provisioning its subscription, as `make run` does.

use testkit::TestEnv;
use tokio_util::sync::CancellationToken;

const BINDING: &str = "*.collection.contribution-assessed";
const PUBLISH: &str = r"commands:^(medical|social)\.collection\.record-payment$";

pub async fn cli(env: &TestEnv, args: &[&str]) -> insurancectl::Report {
    let prefix = env.prefix();
    let amqp = testkit::amqp_url();
    let mut argv = vec!["insurancectl", "--prefix", &prefix, "--amqp-url", &amqp, "--json"];
    argv.extend_from_slice(args);
    let parsed = <insurancectl::Cli as clap::Parser>::try_parse_from(argv).expect("valid arguments");
    insurancectl::run(parsed, &mut std::io::empty())
        .await
        .expect("the CLI ran")
}

/// Removes the subscriber even when the test fails half-way.
pub struct Deprovision<'a>(pub &'a TestEnv);

impl Drop for Deprovision<'_> {
    fn drop(&mut self) {
        let env = self.0;
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(cli(env, &["subscriber", "remove", "tax-authority", "--force"]));
            });
        });
    }
}

/// `amqp://user:pass@host/...` with the tax authority's own credentials.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{hostpart}")
}

/// Enrollment and collection in process, on `env`'s schemas and prefix.
pub async fn start_services(
    env: &TestEnv,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .unwrap();
    env.track_queues(enrollment.topology().owned_queues(enrollment.names()));
    let collection = collection::build(collection::Settings {
        service: env.service_settings("collection"),
        region: "420100".into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .unwrap();
    env.track_queues(collection.topology().owned_queues(collection.names()));
    vec![
        tokio::spawn(enrollment.run_until_stopped(shutdown.clone())),
        tokio::spawn(collection.run_until_stopped(shutdown.clone())),
    ]
}

/// The operator provisions the tax authority (its queue, user and permissions); returns the
/// AMQP URL with its own credentials.
pub async fn provision(env: &TestEnv) -> String {
    let report = cli(
        env,
        &[
            "subscriber",
            "provision",
            "tax-authority",
            "--bind",
            BINDING,
            "--publish",
            PUBLISH,
        ],
    )
    .await;
    assert_eq!(report.code, 0, "{} {}", report.stdout, report.stderr);
    let provisioned: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    let password = provisioned["generated_password"]
        .as_str()
        .expect("a generated password")
        .to_owned();
    let user = format!("{}tax-authority", env.prefix());
    as_user(&testkit::amqp_url(), &user, &password)
}

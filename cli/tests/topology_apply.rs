//! `insurancectl topology apply` (issue 13 §2): the definitions export loaded into a real
//! broker through the management API (`rabbitmq_http_client`), as docker-compose's
//! `broker-init` does: refused with the missing users named before they exist, then every
//! exchange, the delivery-limit policy and every user's permissions and topic permissions on
//! the broker exactly as the export says; safe to run again.
//!
//! Needs the management API (`scripts/servers.sh` enables it).

mod common;

use common::{exit, text};
use insurancectl::args::TopologyFormat;
use serde_json::Value;
use testkit::TestEnv;

/// Deletes the policy `topology apply` made, even when the test fails half-way.
struct RemovePolicy(String);

impl Drop for RemovePolicy {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.0);
        common::with_admin_api(|api, vhost| async move {
            let _ = api.delete_policy(&vhost, &name).await;
        });
    }
}

#[tokio::test]
async fn the_definitions_export_is_loaded_through_the_management_api() {
    let env = TestEnv::new();
    let names = env.names();
    let (api, vhost) = common::admin_api();
    let definitions: Value = serde_json::from_str(
        &insurancectl::topology::export(&names, TopologyFormat::Definitions).expect("the export"),
    )
    .expect("JSON");
    let list = |key: &str| definitions[key].as_array().cloned().unwrap_or_default();
    let users: Vec<String> = list("permissions")
        .iter()
        .map(|p| p["user"].as_str().expect("a user").to_owned())
        .collect();
    assert_eq!(
        users.len(),
        8,
        "five services, the data-sharing user, two simulators"
    );
    let _users = common::RemoveUsers(users.clone());
    let policy = format!(
        "{}{}",
        env.prefix(),
        insurancectl::topology::DELIVERY_LIMIT_POLICY
    );
    let _policy = RemovePolicy(policy.clone());

    // Before the users exist: refused, naming them, and nothing loaded.
    let out = common::ctl_api(&env, &["topology", "apply"], &[]).await;
    exit(&out, 1);
    let stderr = text(&out.stderr);
    let mut sorted = users.clone();
    sorted.sort();
    assert!(
        stderr.contains(&format!("no broker user {}", sorted.join(", ")))
            && stderr.contains("accounts apply --broker --simulators' first; nothing was changed"),
        "{stderr}"
    );
    assert!(api.policy(&vhost, &policy).await.expect("API").is_none());
    assert!(
        !api.exchange_exists(&vhost, &names.commands_exchange())
            .await
            .expect("API")
    );

    // The users (no permissions yet), then the definitions.
    let passwords: Vec<(String, String)> = users
        .iter()
        .map(|u| {
            let service = u.strip_prefix(&env.prefix()).expect("prefixed");
            (
                format!("{}_MQ_PASSWORD", service.to_ascii_uppercase().replace('-', "_")),
                format!("pw{}", env.id),
            )
        })
        .collect();
    let vars: Vec<(&str, &str)> = passwords.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    exit(
        &common::ctl_api(&env, &["accounts", "apply", "--broker", "--simulators"], &vars).await,
        0,
    );
    for run in ["first", "again"] {
        let out = common::ctl_api(&env, &["topology", "apply"], &[]).await;
        let stdout = exit(&out, 0);
        assert_eq!(
            stdout, "imported 4 exchanges, 1 policies, 8 permissions and 21 topic permissions for 8 users\n",
            "{run}"
        );
    }

    // The broker holds what the export says.
    for x in list("exchanges") {
        let name = x["name"].as_str().expect("a name");
        assert!(
            api.exchange_exists(&vhost, name).await.expect("API"),
            "exchange {name}"
        );
    }
    let on_broker = api
        .policy(&vhost, &policy)
        .await
        .expect("API")
        .expect("the policy");
    let exported = &list("policies")[0];
    assert_eq!(
        on_broker.pattern,
        exported["pattern"].as_str().expect("a pattern")
    );
    assert_eq!(
        serde_json::to_value(&on_broker.definition).expect("JSON")["delivery-limit"],
        20
    );
    for p in list("permissions") {
        let user = p["user"].as_str().expect("a user");
        let got = api
            .permissions(&vhost, user)
            .await
            .expect("API")
            .unwrap_or_else(|| panic!("permissions of {user}"));
        assert_eq!(
            (got.configure.as_str(), got.write.as_str(), got.read.as_str()),
            (
                p["configure"].as_str().expect("configure"),
                p["write"].as_str().expect("write"),
                p["read"].as_str().expect("read")
            ),
            "{user}"
        );
    }
    for t in list("topic_permissions") {
        let user = t["user"].as_str().expect("a user");
        let exchange = t["exchange"].as_str().expect("an exchange");
        let got = api.topic_permissions(&vhost, user).await.expect("API");
        let one = got
            .iter()
            .find(|g| g.exchange == exchange)
            .unwrap_or_else(|| panic!("topic permissions of {user} on {exchange}: {got:?}"));
        assert_eq!(
            (one.write.as_str(), one.read.as_str()),
            (
                t["write"].as_str().expect("write"),
                t["read"].as_str().expect("read")
            ),
            "{user} on {exchange}"
        );
    }
}

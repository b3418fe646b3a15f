//! `accounts apply`: the services' own accounts (issue 13 §1). On Postgres each service
//! connects as a role named as its schema, which owns that schema and everything in it and has
//! no right anywhere else; its migrations run as that role (what a role may do is decided in
//! `platform::db::provision_role`, which the test harness uses too). On the broker each
//! service has a user `<prefix><service>` with the permissions and topic permissions of the
//! topology ([`crate::topology`], the same grants `topology export` gives a cluster), and the
//! services share one management-API user for the data-sharing shovels.

use crate::args::{AccountsCmd, Cli};
use crate::management::{Api, amqp_target};
use crate::{EXIT_FAILURE, Report};
use anyhow::{Context, bail};
use serde::Serialize;
use std::fmt::Write as _;

/// A service and the schema its configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSchema {
    pub service: &'static str,
    pub schema: String,
}

/// Every service of the suite, with the schema of its `configuration/base.yaml`.
pub fn services() -> anyhow::Result<Vec<ServiceSchema>> {
    [
        ("enrollment", enrollment::BASE_CONFIGURATION),
        ("collection", collection::BASE_CONFIGURATION),
        ("benefits", benefits::BASE_CONFIGURATION),
        ("card-issuance", card_issuance::BASE_CONFIGURATION),
        ("notification", notification::BASE_CONFIGURATION),
    ]
    .into_iter()
    .map(|(service, yaml)| {
        let base: serde_json::Value = platform::config::from_yaml_str(yaml)
            .with_context(|| format!("the configuration/base.yaml of {service}"))?;
        let schema = base["database"]["schema"]
            .as_str()
            .with_context(|| format!("{service}: configuration/base.yaml names no database.schema"))?
            .to_owned();
        Ok(ServiceSchema { service, schema })
    })
    .collect()
}

/// The role and schema of `schema` under a test prefix (`t1.` → `t1_enrollment`).
pub fn prefixed(prefix: &str, schema: &str) -> String {
    let p: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{p}{schema}")
}

/// Where an account's password comes from: `<SERVICE>_DB_PASSWORD` (`kind` "DB", Postgres) or
/// `<SERVICE>_MQ_PASSWORD` ("MQ", the broker).
pub fn password_variable(service: &str, kind: &str) -> String {
    format!(
        "{}_{kind}_PASSWORD",
        service.to_ascii_uppercase().replace('-', "_")
    )
}

pub use messaging::grants::DATA_SHARING_USER;

#[derive(Debug, Clone, Serialize)]
struct Applied {
    service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker_user: Option<String>,
}

pub async fn run(cli: &Cli, cmd: &AccountsCmd) -> anyhow::Result<Report> {
    let AccountsCmd::Apply(a) = cmd;
    let all = services()?;
    for w in &a.services {
        if !all.iter().any(|s| s.service == w) {
            bail!(
                "unknown service '{w}' (one of: {})",
                all.iter().map(|s| s.service).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let chosen: Vec<&ServiceSchema> = all
        .iter()
        .filter(|s| a.services.is_empty() || a.services.iter().any(|w| w == s.service))
        .collect();
    let (postgres, broker) = match (a.postgres, a.broker) {
        (false, false) => (true, true),
        other => other,
    };
    let mut report = Report::default();
    let mut applied: Vec<Applied> = chosen
        .iter()
        .map(|s| Applied {
            service: s.service.to_owned(),
            role: None,
            broker_user: None,
        })
        .collect();
    if postgres {
        let Some(url) = &a.database_url else {
            bail!("--database-url (or DATABASE_URL) is needed for the Postgres roles; --broker skips them");
        };
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("connecting to Postgres as its administrator (--database-url)")?;
        let driver = tokio::spawn(conn);
        for (s, done) in chosen.iter().zip(applied.iter_mut()) {
            let name = prefixed(&cli.prefix, &s.schema);
            let password = std::env::var(password_variable(s.service, "DB"))
                .ok()
                .filter(|p| !p.is_empty());
            match platform::db::provision_role(&client, &name, &name, password.as_deref()).await {
                Ok(()) => done.role = Some(name),
                Err(e) => {
                    report.code = EXIT_FAILURE;
                    let _ = writeln!(report.stderr, "error: {}: {e:#}", s.service);
                }
            }
        }
        drop(client);
        let _ = driver.await;
    }
    if broker {
        let names = messaging::Names::new(cli.prefix.clone());
        let topology = crate::topology::build(&names, &crate::topology::services()?)?;
        let target = amqp_target(&cli.amqp_url)?;
        let api = a.api.api(cli)?;
        for (s, done) in chosen.iter().zip(applied.iter_mut()) {
            let user_name = format!("{}{}", names.prefix(), s.service);
            let Some(user) = topology.user(&user_name) else {
                bail!("the topology has no user {user_name}");
            };
            let var = password_variable(s.service, "MQ");
            match put_user(&api, &target.vhost, user, &var).await {
                Ok(()) => done.broker_user = Some(user_name),
                Err(e) => {
                    report.code = EXIT_FAILURE;
                    let _ = writeln!(report.stderr, "error: {}: {e:#}", s.service);
                }
            }
        }
        if a.simulators {
            for user in topology
                .users
                .iter()
                .filter(|u| u.deployment == crate::topology::Deployment::Compose)
            {
                let bare = user.name.strip_prefix(names.prefix()).unwrap_or(&user.name);
                match put_user(&api, &target.vhost, user, &password_variable(bare, "MQ")).await {
                    Ok(()) => applied.push(Applied {
                        service: bare.to_owned(),
                        role: None,
                        broker_user: Some(user.name.clone()),
                    }),
                    Err(e) => {
                        report.code = EXIT_FAILURE;
                        let _ = writeln!(report.stderr, "error: {bare}: {e:#}");
                    }
                }
            }
        }
        let ds_name = format!("{}{DATA_SHARING_USER}", names.prefix());
        let Some(data_sharing) = topology.user(&ds_name) else {
            bail!("the topology has no user {ds_name}");
        };
        if let Err(e) = put_user(&api, &target.vhost, data_sharing, "DATA_SHARING_MQ_PASSWORD").await {
            report.code = EXIT_FAILURE;
            let _ = writeln!(report.stderr, "error: {DATA_SHARING_USER}: {e:#}");
        } else {
            applied.push(Applied {
                service: DATA_SHARING_USER.into(),
                role: None,
                broker_user: Some(data_sharing.name.clone()),
            });
        }
    }
    report.stdout = if cli.json {
        let mut s = serde_json::to_string_pretty(&applied)?;
        s.push('\n');
        s
    } else {
        let mut out = String::new();
        for a in &applied {
            if let Some(role) = &a.role {
                let _ = writeln!(
                    out,
                    "{:<14} role {role} owns schema {role} and nothing else",
                    a.service
                );
            }
            if let Some(user) = &a.broker_user {
                let _ = writeln!(
                    out,
                    "{:<14} user {user} with its service's permissions and topic permissions",
                    a.service
                );
            }
        }
        out
    };
    Ok(report)
}

/// `user` on the broker with its tags and grants, its password from `var` (kept when unset).
async fn put_user(api: &Api, vhost: &str, user: &crate::topology::User, var: &str) -> anyhow::Result<()> {
    let password = std::env::var(var).ok().filter(|p| !p.is_empty());
    messaging::grants::put_user(
        api,
        vhost,
        &user.name,
        password.as_deref(),
        &user.tags.join(","),
        &user.permissions,
        &user.topic_permissions,
    )
    .await
    .with_context(|| format!("(password from {var})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_names_its_schema() {
        let all = services().unwrap();
        let pairs: Vec<(&str, &str)> = all.iter().map(|s| (s.service, s.schema.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("enrollment", "enrollment"),
                ("collection", "collection"),
                ("benefits", "benefits"),
                ("card-issuance", "card"),
                ("notification", "notification"),
            ]
        );
    }

    #[test]
    fn prefixes_and_password_variables() {
        assert_eq!(prefixed("", "card_issuance"), "card_issuance");
        assert_eq!(prefixed("t1A.", "enrollment"), "t1a_enrollment");
        assert_eq!(
            password_variable("card-issuance", "DB"),
            "CARD_ISSUANCE_DB_PASSWORD"
        );
        assert_eq!(password_variable("bank-sim", "MQ"), "BANK_SIM_MQ_PASSWORD");
    }
}

//! `accounts apply`: the services' own Postgres roles (issue 13 §1). Each service connects as
//! a role named as its schema, which owns that schema and everything in it and has no right
//! anywhere else; its migrations run as that role. What a role may do is decided in
//! `platform::db::provision_role`, which the test harness uses too.

use crate::args::{AccountsCmd, Cli};
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

/// `<SERVICE>_DB_PASSWORD`.
pub fn password_variable(service: &str) -> String {
    format!("{}_DB_PASSWORD", service.to_ascii_uppercase().replace('-', "_"))
}

#[derive(Debug, Clone, Serialize)]
struct Applied {
    service: String,
    role: String,
    schema: String,
    password: &'static str,
}

pub async fn run(cli: &Cli, cmd: &AccountsCmd) -> anyhow::Result<Report> {
    let AccountsCmd::Apply {
        database_url,
        services: wanted,
    } = cmd;
    let all = services()?;
    for w in wanted {
        if !all.iter().any(|s| s.service == w) {
            bail!(
                "unknown service '{w}' (one of: {})",
                all.iter().map(|s| s.service).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let chosen: Vec<&ServiceSchema> = all
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.service))
        .collect();
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to Postgres as its administrator (--database-url)")?;
    let driver = tokio::spawn(conn);
    let mut applied = Vec::new();
    let mut report = Report::default();
    for s in chosen {
        let name = prefixed(&cli.prefix, &s.schema);
        let var = password_variable(s.service);
        let password = std::env::var(&var).ok().filter(|p| !p.is_empty());
        match platform::db::provision_role(&client, &name, &name, password.as_deref()).await {
            Ok(()) => applied.push(Applied {
                service: s.service.to_owned(),
                role: name.clone(),
                schema: name,
                password: if password.is_some() {
                    "set from the environment"
                } else {
                    "unchanged"
                },
            }),
            Err(e) => {
                report.code = EXIT_FAILURE;
                let _ = writeln!(report.stderr, "error: {}: {e:#}", s.service);
            }
        }
    }
    drop(client);
    let _ = driver.await;
    report.stdout = if cli.json {
        let mut s = serde_json::to_string_pretty(&applied)?;
        s.push('\n');
        s
    } else {
        let mut out = String::new();
        for a in &applied {
            let _ = writeln!(
                out,
                "{:<14} role {} owns schema {} and nothing else (password {})",
                a.service, a.role, a.schema, a.password
            );
        }
        out
    };
    Ok(report)
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
        assert_eq!(password_variable("card-issuance"), "CARD_ISSUANCE_DB_PASSWORD");
    }
}

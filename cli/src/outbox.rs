//! `insurancectl outbox failed | retry`: the rows a service's relay quarantined.

use crate::Report;
use crate::args::{Cli, OutboxCmd, OutboxTarget};
use anyhow::Context;
use std::fmt::Write as _;

async fn connect(target: &OutboxTarget) -> anyhow::Result<tokio_postgres::Client> {
    platform::config::validate_identifier("--schema", &target.schema)?;
    let (client, conn) = tokio_postgres::connect(&target.database_url, tokio_postgres::NoTls)
        .await
        .context("cannot reach the service's database")?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("set search_path = {}", target.schema))
        .await?;
    Ok(client)
}

pub async fn run(cli: &Cli, cmd: &OutboxCmd) -> anyhow::Result<Report> {
    match cmd {
        OutboxCmd::Failed { target, limit } => {
            let client = connect(target).await?;
            let rows = messaging::outbox::quarantined(&client, *limit)
                .await
                .with_context(|| format!("cannot read {}.outbox", target.schema))?;
            if cli.json {
                return Ok(Report::out(serde_json::to_string_pretty(&rows)? + "\n"));
            }
            let mut out = format!("{} quarantined outbox row(s) in {}\n", rows.len(), target.schema);
            for r in &rows {
                let _ = writeln!(
                    out,
                    "{:>8}  {}  {}  attempts {}  failed {}  {}",
                    r.id,
                    r.message_id,
                    r.routing_key,
                    r.attempts,
                    r.failed_at.to_rfc3339(),
                    r.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(Report::out(out))
        }
        OutboxCmd::Retry { target, id, all } => {
            let client = connect(target).await?;
            let id = if *all { None } else { *id };
            let n = messaging::outbox::retry_quarantined(&client, &target.schema, id).await?;
            Ok(Report::out(format!(
                "{n} row(s) given back to the relay of {}\n",
                target.schema
            )))
        }
    }
}

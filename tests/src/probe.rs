//! `probe`: a service with no business, built on the shared runtime exactly as the real ones
//! are, whose commands misbehave on purpose (panic, hang, block on a lock, fail for ever,
//! crash the process). The messaging core's fault tests drive it; every behaviour lives in
//! the core, so what holds for the probe holds for every service.
//!
//! Routing key `<line>.probe.<command>`; the body is `{"key": "...", "value": "..."}`. The
//! ordering key is `key`.

use async_trait::async_trait;
use contracts::{ErrorBody, ErrorCode, Line};
use deadpool_postgres::Transaction;
use messaging::runtime::{ServiceRuntime, ServiceSettings, ServiceSpec};
use messaging::topology::ServiceTopologySpec;
use messaging::{Handled, Handler, HandlerError, Incoming, Names, Outgoing};
use std::time::Duration;

pub const SERVICE: &str = "probe";

mod embedded {
    refinery::embed_migrations!("probe_migrations");
}

pub struct ProbeHandler {
    pub names: Names,
    /// `crash` aborts the process (a real crash loop) when set; otherwise it records.
    pub crash: bool,
}

fn key(msg: &Incoming) -> String {
    msg.body["key"].as_str().unwrap_or_default().to_owned()
}

#[async_trait]
impl Handler for ProbeHandler {
    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> Result<Handled, HandlerError> {
        let k = key(msg);
        let value = msg.body["value"].as_str().map(str::to_owned);
        match msg.name.as_str() {
            "record" | "crash" | "hold" | "flaky" | "poison" => {}
            "panic" => panic!("probe told to panic on {k}"),
            "hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            "lock" => {
                tx.execute("select id from lockable where id = 1 for update", &[])
                    .await?;
            }
            "transient" => {
                return Err(HandlerError::Transient(anyhow::anyhow!(
                    "probe: always transient"
                )));
            }
            "unique" => {
                tx.execute("insert into singles (key) values ($1)", &[&k]).await?;
            }
            "missing" => {
                tx.query_one("select id from lockable where id = -1", &[]).await?;
            }
            other => {
                return Err(HandlerError::Rejected(ErrorBody::new(
                    ErrorCode::UnknownCommand,
                    format!("probe has no command {other}"),
                )));
            }
        }
        if msg.name == "crash" && self.crash {
            // A real crash: no unwinding, no settling, the connection simply drops.
            std::process::abort();
        }
        if msg.name == "hold" {
            // Holds the line's connection for a while, as a heavy command does.
            tx.execute("select pg_sleep(0.3)", &[]).await?;
        }
        if msg.name == "flaky" {
            let retries: u32 = msg
                .envelope
                .headers
                .get(contracts::headers::RETRY_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if retries == 0 {
                return Err(HandlerError::Transient(anyhow::anyhow!(
                    "probe: fails until retried once"
                )));
            }
        }
        tx.execute(
            "insert into effects (key, command, message_id, value) values ($1, $2, $3, $4)",
            &[&k, &msg.name, &msg.envelope.message_id, &value],
        )
        .await?;
        let mut outgoing = vec![Outgoing::event(
            &self.names,
            msg.line,
            SERVICE,
            "recorded",
            1,
            serde_json::json!({"key": k, "command": msg.name, "value": value}),
            Some(&msg.envelope),
        )];
        if msg.name == "poison" {
            // A command to a service nobody runs: the broker returns it, every time.
            let mut bad = outgoing[0].clone();
            bad.message_id = uuid::Uuid::now_v7();
            bad.exchange = self.names.commands_exchange();
            bad.routing_key = format!("{}.nobody.listens", msg.line);
            outgoing.insert(0, bad);
        }
        Ok(Handled {
            result: Some(serde_json::json!({"key": k})),
            outgoing,
            wrote_outbox: false,
        })
    }

    fn ordering_key(&self, msg: &Incoming) -> Option<String> {
        Some(key(msg)).filter(|k| !k.is_empty())
    }
}

pub type Probe = ServiceRuntime<ProbeHandler>;

/// The probe on both business lines.
pub async fn build(settings: ServiceSettings, crash: bool) -> anyhow::Result<Probe> {
    let names = Names::new(settings.broker.prefix.clone());
    let mut migrations = embedded::migrations::runner();
    migrations.set_migration_table_name("probe_schema_history");
    let spec = ServiceSpec {
        topology: ServiceTopologySpec {
            service: SERVICE,
            command_lines: vec![Line::Medical, Line::Social],
            event_bindings: vec![],
            sends: vec![],
        },
        handler: ProbeHandler { names, crash },
        migrations,
    };
    ServiceRuntime::build(settings, spec).await
}

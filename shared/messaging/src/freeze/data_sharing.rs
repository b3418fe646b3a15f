//! The `data-sharing` channel (issue 7 §4): while it is frozen for a line, external
//! subscribers (the tax authority) receive none of that line's events; at the thaw they
//! receive all of them, in their original order, once.
//!
//! Built on the broker's own mechanisms, no store of ours: each business line has a hold queue
//! (`subscribers.<line>.hold`, quorum) bound to the events exchange with `<line>.#`, and a
//! dynamic shovel (`subscribers-<line>`) that moves it into the subscribers' exchange
//! (`insurance.subscribers`, topic, original routing keys), to which every subscriber's queue
//! is bound. The operator tooling creates both when it provisions a subscriber
//! (`insurancectl subscriber provision`). A freeze that holds the line's data sharing removes
//! the shovel (the events wait in the hold queue, in order); the thaw restores it, and the
//! broker delivers what waited, first in first out, before anything newer. The shovel
//! acknowledges at the source only once the destination confirmed (`on-confirm`), so nothing
//! is lost if it is interrupted; a message it had forwarded but not yet acknowledged may come
//! again, with the same `message_id`, which subscribers deduplicate as they do any redelivery.
//!
//! Every replica of every service holding the orders reconciles the shovels (idempotent: each
//! reads the state first), so this works as long as one of them runs with the management API
//! configured. A freeze starts holding within one `tick_ms` of its start (and the lift
//! restores the flow as quickly).

use super::Freeze;
use crate::management::{Api, amqp_target, local_shovel};
use crate::names::Names;
use contracts::Line;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the management API is, for the data-sharing shovels. Absent `api_url`: the service
/// does not control data sharing (`freeze status` says so), and subscribers keep receiving.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct DataSharingSettings {
    /// `http://host:15672`.
    pub api_url: Option<String>,
    /// Default: the user and password of the broker URL.
    pub api_user: Option<String>,
    pub api_password: Option<String>,
    /// How often the state of a shovel is read again when nothing changed (ms; default 10 s).
    pub recheck_ms: Option<u64>,
}

/// The shovel of `line`: the hold queue into the subscribers' exchange, keeping each event's
/// routing key and properties, acknowledged at the source after the destination confirmed.
pub fn shovel_definition(names: &Names, line: Line, vhost: &str) -> Value {
    local_shovel(
        vhost,
        &names.data_sharing_hold(line),
        &names.subscribers_exchange(),
    )
}

/// Puts the shovel of `line` in place unless it exists (a PUT of an existing shovel restarts
/// it).
pub async fn restore(api: &Api, names: &Names, line: Line, vhost: &str) -> anyhow::Result<bool> {
    let name = names.data_sharing_shovel(line);
    if api.shovel(vhost, &name).await?.is_some() {
        return Ok(false);
    }
    api.put_shovel(vhost, &name, &shovel_definition(names, line, vhost))
        .await?;
    Ok(true)
}

/// Removes the shovel of `line`; the line's events wait in its hold queue.
pub async fn hold(api: &Api, names: &Names, line: Line, vhost: &str) -> anyhow::Result<bool> {
    api.delete_shovel(vhost, &names.data_sharing_shovel(line)).await
}

/// Keeps each line's shovel as the orders in force say, until `shutdown`.
pub(crate) async fn run(
    freeze: Freeze,
    names: Names,
    settings: DataSharingSettings,
    broker_url: String,
    tick: Duration,
    shutdown: CancellationToken,
) {
    let Some(api_url) = settings.api_url.clone() else {
        return;
    };
    let target = match amqp_target(&broker_url) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "data sharing: cannot read the broker URL; not controlling the shovels");
            return;
        }
    };
    let user = settings.api_user.clone().unwrap_or(target.user.clone());
    let password = settings.api_password.clone().unwrap_or(target.password.clone());
    let api = match Api::new(&api_url, &user, &password, Duration::from_secs(10)) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "data sharing: management API not usable; not controlling the shovels");
            return;
        }
    };
    let recheck = Duration::from_millis(settings.recheck_ms.unwrap_or(10_000));
    // Per line: the state last put in place, and when.
    let mut done: HashMap<Line, (bool, Instant)> = HashMap::new();
    while !shutdown.is_cancelled() {
        for line in Line::BUSINESS {
            let held = freeze.data_sharing_held(line);
            if let Some((was, at)) = done.get(&line)
                && *was == held
                && at.elapsed() < recheck
            {
                continue;
            }
            match reconcile(&api, &names, line, &target.vhost, held).await {
                Ok(()) => {
                    metrics::gauge!("data_sharing_held", "line" => line.as_str()).set(if held {
                        1.0
                    } else {
                        0.0
                    });
                    done.insert(line, (held, Instant::now()));
                }
                Err(e) => {
                    tracing::warn!(%line, held, error = %e, "data sharing: could not set the shovel; will try again")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = freeze.poked() => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

async fn reconcile(api: &Api, names: &Names, line: Line, vhost: &str, held: bool) -> anyhow::Result<()> {
    // No hold queue: no subscriber was provisioned on this broker (prefix); nothing to do.
    if !api.queue_exists(vhost, &names.data_sharing_hold(line)).await? {
        return Ok(());
    }
    if held {
        if hold(api, names, line, vhost).await? {
            tracing::info!(%line, "data sharing held: the line's events wait for the thaw");
        }
    } else if restore(api, names, line, vhost).await? {
        tracing::info!(%line, "data sharing flowing: the line's events go to the subscribers");
    }
    Ok(())
}

//! Is the database reachable? One small side connection checks every second (and at once
//! when a handler reports a connection failure). Consumers stop taking messages while it is
//! down and start again by themselves when it is back; `/readyz` reads the same answer
//! without waiting for anything.

use crate::broker::backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct DbHealth {
    up: Arc<watch::Sender<bool>>,
    poke: Arc<Notify>,
}

impl Default for DbHealth {
    fn default() -> Self {
        DbHealth {
            up: Arc::new(watch::channel(true).0),
            poke: Arc::new(Notify::new()),
        }
    }
}

impl DbHealth {
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// A handler saw a connection failure: check now rather than at the next tick.
    pub fn report_failure(&self) {
        self.poke.notify_one();
    }

    /// Waits until the database is up; false if `stop` came first.
    pub async fn wait_up(&self, stop: &CancellationToken) -> bool {
        let mut rx = self.watch();
        loop {
            if *rx.borrow_and_update() {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                _ = stop.cancelled() => return false,
            }
        }
    }

    fn set(&self, up: bool) {
        let was = self.up.send_replace(up);
        if was != up {
            if up {
                tracing::info!("database reachable again");
            } else {
                tracing::warn!("database unreachable");
            }
        }
        metrics::gauge!("database_up").set(if up { 1.0 } else { 0.0 });
    }

    /// Checks the database until `shutdown`: `select 1` on a kept connection (same URL, TLS
    /// and options as the pools), reconnecting as needed.
    pub async fn run(
        self,
        database: platform::db::DatabaseSettings,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut client: Option<(tokio_postgres::Client, platform::db::ConnectionDriver)> = None;
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            if client.as_ref().is_none_or(|(c, _)| c.is_closed()) {
                let connect =
                    tokio::time::timeout(Duration::from_secs(3), platform::db::connect_one(&database, None));
                client = match connect.await {
                    Ok(Ok(pair)) => Some(pair),
                    _ => None,
                };
            }
            let ok = match &client {
                Some((c, _)) => matches!(
                    tokio::time::timeout(Duration::from_secs(2), c.simple_query("select 1")).await,
                    Ok(Ok(_))
                ),
                None => false,
            };
            if ok {
                failures = 0;
            } else {
                failures += 1;
                if let Some((_, driver)) = client.take() {
                    driver.abort();
                }
            }
            self.set(ok);
            let wait = if ok {
                interval
            } else {
                backoff(failures, interval).min(interval)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.poke.notified() => {}
                _ = shutdown.cancelled() => {}
            }
        }
        if let Some((_, driver)) = client.take() {
            driver.abort();
        }
    }
}

//! A database budget per line (DESIGN.md §4 "Line isolation"): each line has its own pool,
//! so a burst or a backlog drain on one line can take at most its own connections and never
//! makes the other line wait for one.

use contracts::Line;
use deadpool_postgres::Pool;
use platform::db::DatabaseSettings;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct LinePools {
    pools: Arc<HashMap<Line, Pool>>,
}

impl LinePools {
    /// One pool of `settings.pool_size` connections per line; connections are opened on
    /// demand, so a line a service does not serve costs nothing.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let mut pools = HashMap::new();
        for line in Line::ALL {
            pools.insert(line, platform::db::connect(settings).await?);
        }
        Ok(LinePools {
            pools: Arc::new(pools),
        })
    }

    /// The same pool for every line (tools and tests that do not need the isolation).
    pub fn shared(pool: Pool) -> Self {
        LinePools {
            pools: Arc::new(Line::ALL.into_iter().map(|l| (l, pool.clone())).collect()),
        }
    }

    pub fn get(&self, line: Line) -> &Pool {
        self.pools.get(&line).expect("a pool per line")
    }

    /// Connections in use per line, for metrics.
    /// Closes the connections idle for longer than `max_idle`, keeping one per pool warm: a
    /// burst (a thaw, a catch-up) leaves its connections open otherwise, and a server's
    /// connections are shared by every service (the default 100 were used up by two drills'
    /// idle pools).
    pub fn close_idle(&self, max_idle: std::time::Duration) {
        for pool in self.pools.values() {
            let mut kept = 0;
            let r = pool.retain(|_, m| {
                let keep = kept == 0 || m.last_used() < max_idle;
                if keep {
                    kept += 1;
                }
                keep
            });
            if !r.removed.is_empty() {
                tracing::debug!(closed = r.removed.len(), "idle database connections closed");
            }
        }
    }

    pub fn record_metrics(&self) {
        for (line, pool) in self.pools.iter() {
            let s = pool.status();
            metrics::gauge!("db_pool_in_use", "line" => line.as_str()).set((s.size - s.available) as f64);
            metrics::gauge!("db_pool_waiting", "line" => line.as_str()).set(s.waiting as f64);
        }
    }
}

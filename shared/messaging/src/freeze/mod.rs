//! Freezing a line (停机切换, DESIGN.md §5), in the shared core: every service gets it by
//! writing only handlers.
//!
//! - [`clock`]: the one clock orders are judged by (real, or a drill clock).
//! - [`store`]: orders, started/ended claims and the backlog in the service's schema, the
//!   source of truth every replica reads at start and on change.
//! - `control`: the consumer of the service's control queue (`insurance.control`), which
//!   stores orders, lifts, extensions and cancellations, and answers `freeze status`.
//! - `supervisor`: applies the orders on the clock: closes and opens the queue gates,
//!   publishes `freeze-started` / `freeze-ended`, keeps the gauges, and at thaw processes the
//!   backlog in arrival order before the line's queues resume.
//! - The gate itself is in the consumer loop (`consumer::run`): a command in scope of an
//!   `intake-only` order is stored in the backlog with its inbox row and answered `deferred`
//!   with a receipt; one in scope of a `suspended` order is answered `suspended` and nothing
//!   is stored.

pub mod clock;
pub(crate) mod control;
pub mod data_sharing;
pub mod store;
pub(crate) mod supervisor;

pub use clock::{Clock, ClockSettings};
pub use control::publish as publish_control;

use chrono::{DateTime, Utc};
use contracts::freeze::{self as f, Decision, FreezeOrder, Request};
use contracts::{Channel, Line};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::StoredOrder;
use tokio::sync::{Notify, watch};

/// `messaging.freeze` in the settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FreezeSettings {
    #[serde(flatten)]
    pub clock: ClockSettings,
    /// How often the supervisor looks at the clock (wall milliseconds).
    pub tick_ms: u64,
    /// How often a replica re-reads the orders it did not store itself.
    pub refresh_ms: u64,
    /// Held requests read per batch at thaw.
    pub drain_batch: i64,
    /// Held requests processed at once at thaw (different ordering keys).
    pub drain_concurrency: usize,
    /// The management API, for holding external subscribers' events ([`data_sharing`]).
    pub data_sharing: data_sharing::DataSharingSettings,
}

impl Default for FreezeSettings {
    fn default() -> Self {
        FreezeSettings {
            clock: ClockSettings::default(),
            tick_ms: 200,
            refresh_ms: 1_000,
            drain_batch: 500,
            drain_concurrency: 8,
            data_sharing: Default::default(),
        }
    }
}

impl FreezeSettings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
    }

    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms.max(50))
    }
}

/// The orders a service holds, judged on its clock; shared by the gate, the supervisor,
/// the control consumer and handlers (collection's deadlines).
#[derive(Clone)]
pub struct Freeze {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    clock: Clock,
    stored: RwLock<Arc<Vec<StoredOrder>>>,
    book: RwLock<Arc<Vec<FreezeOrder>>>,
    /// A line whose backlog is being processed: new commands of the line join the backlog
    /// behind what was held, so nothing overtakes it.
    draining: HashMap<Line, AtomicBool>,
    changed: Notify,
    /// Held while the orders are read and put in place, so that a read that began before an
    /// order's commit (the supervisor's) never replaces one that began after it (the control
    /// consumer's, before it answers the operator).
    reading: tokio::sync::Mutex<()>,
    /// Set once the orders were read from the database and the gates set from them: no queue is consumed before, so a
    /// replica started during a freeze never lets a request through unfrozen.
    loaded: watch::Sender<bool>,
}

impl Freeze {
    pub fn new(service: &str, clock: Clock) -> Self {
        Freeze {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                clock,
                stored: RwLock::default(),
                book: RwLock::default(),
                draining: Line::ALL
                    .into_iter()
                    .map(|l| (l, AtomicBool::new(false)))
                    .collect(),
                changed: Notify::new(),
                reading: tokio::sync::Mutex::new(()),
                loaded: watch::Sender::new(false),
            }),
        }
    }

    pub fn service(&self) -> &str {
        &self.inner.service
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The service's time: what requests are stamped with and orders are judged at.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Reads the orders from the database and puts them in place, one read at a time: the last
    /// read to begin is the last put in place.
    pub async fn read_orders(
        &self,
        client: &impl deadpool_postgres::GenericClient,
    ) -> Result<usize, tokio_postgres::Error> {
        let _one = self.inner.reading.lock().await;
        let orders = store::load(client).await?;
        let n = orders.len();
        self.set_orders(orders);
        Ok(n)
    }

    /// Replaces the orders (after reading them from the database).
    pub fn set_orders(&self, stored: Vec<StoredOrder>) {
        let book: Vec<FreezeOrder> = stored.iter().filter_map(StoredOrder::effective).collect();
        *self.inner.stored.write().expect("orders lock") = Arc::new(stored);
        *self.inner.book.write().expect("book lock") = Arc::new(book);
    }

    /// The supervisor has read the orders and set the gates from them.
    pub(crate) fn mark_loaded(&self) {
        self.inner
            .loaded
            .send_if_modified(|l| !std::mem::replace(l, true));
    }

    /// Returns once the orders have been read and applied (at start, before consuming).
    pub async fn loaded(&self) {
        let mut rx = self.inner.loaded.subscribe();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Every order as stored (cancelled and ended ones too).
    pub fn stored(&self) -> Arc<Vec<StoredOrder>> {
        self.inner.stored.read().expect("orders lock").clone()
    }

    /// The orders as they apply (lifts applied, cancelled ones left out).
    pub fn book(&self) -> Arc<Vec<FreezeOrder>> {
        self.inner.book.read().expect("book lock").clone()
    }

    /// What the gate does with one request now.
    pub fn decide(
        &self,
        line: Line,
        channel: Option<Channel>,
        operation: &str,
        payer_kind: Option<&str>,
    ) -> Decision {
        self.decide_at(self.now(), line, channel, operation, payer_kind)
    }

    pub fn decide_at(
        &self,
        at: DateTime<Utc>,
        line: Line,
        channel: Option<Channel>,
        operation: &str,
        payer_kind: Option<&str>,
    ) -> Decision {
        let req = Request {
            line,
            service: &self.inner.service,
            channel,
            operation,
            payer_kind,
        };
        f::decide(&self.book(), at, &req)
    }

    /// Whether an order in force on `line` is scoped by payer kind (the gate then finds the
    /// payer kind of commands whose body does not say it).
    pub fn payer_scoped(&self, line: Line) -> bool {
        let now = self.now();
        self.book().iter().any(|o| {
            o.in_force(now) && !o.scope.payer_kinds.is_empty() && o.covers_line(line, &self.inner.service)
        })
    }

    /// Whether an order in force stops the consumption of `line`'s events now.
    pub fn events_paused(&self, line: Line) -> bool {
        let now = self.now();
        self.book()
            .iter()
            .any(|o| o.in_force(now) && o.pauses_events(line, &self.inner.service))
    }

    /// Whether an order in force holds `line`'s events back from external subscribers now.
    pub fn data_sharing_held(&self, line: Line) -> bool {
        let now = self.now();
        self.book()
            .iter()
            .any(|o| o.in_force(now) && o.holds_data_sharing(line))
    }

    /// The freeze windows that extend `line`'s deadlines (open-ended ones until now).
    pub fn deadline_windows(&self, line: Line) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        f::deadline_windows(&self.book(), line, self.now())
    }

    /// A deadline of `line` moved by its freezes (顺延).
    pub fn extend_deadline(&self, line: Line, deadline: DateTime<Utc>) -> DateTime<Utc> {
        f::extend_deadline(deadline, &self.deadline_windows(line))
    }

    pub fn is_draining(&self, line: Line) -> bool {
        self.inner.draining[&line].load(Ordering::SeqCst)
    }

    pub(crate) fn set_draining(&self, line: Line, on: bool) {
        self.inner.draining[&line].store(on, Ordering::SeqCst);
    }

    /// Something changed the orders in this process: the supervisor looks at once.
    pub(crate) fn poke(&self) {
        self.inner.changed.notify_waiters();
    }

    pub(crate) async fn poked(&self) {
        self.inner.changed.notified().await
    }
}

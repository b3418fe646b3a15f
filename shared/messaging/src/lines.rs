//! Pause and resume each line's consumers on their own. A paused line's consumers are
//! cancelled after their in-flight messages finish; its messages wait in the broker, and the
//! other line keeps flowing. The freeze machinery drives these switches.

use contracts::Line;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct LineSwitches {
    inner: Arc<HashMap<Line, watch::Sender<bool>>>,
}

impl Default for LineSwitches {
    fn default() -> Self {
        let inner = Line::ALL
            .into_iter()
            .map(|l| (l, watch::channel(false).0))
            .collect();
        LineSwitches {
            inner: Arc::new(inner),
        }
    }
}

impl LineSwitches {
    fn sender(&self, line: Line) -> &watch::Sender<bool> {
        self.inner.get(&line).expect("every line has a switch")
    }

    pub fn pause(&self, line: Line) {
        self.sender(line).send_replace(true);
        metrics::gauge!("line_paused", "line" => line.as_str()).set(1.0);
        tracing::info!(%line, "line paused");
    }

    pub fn resume(&self, line: Line) {
        self.sender(line).send_replace(false);
        metrics::gauge!("line_paused", "line" => line.as_str()).set(0.0);
        tracing::info!(%line, "line resumed");
    }

    pub fn is_paused(&self, line: Line) -> bool {
        *self.sender(line).borrow()
    }

    /// A receiver that sees every change of `line`'s switch (`true` = paused).
    pub fn watch(&self, line: Line) -> watch::Receiver<bool> {
        self.sender(line).subscribe()
    }
}

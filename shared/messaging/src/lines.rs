//! The gates of each line's queues. A closed gate stops the consumption of that line's
//! queues of one kind (commands or events) after their in-flight messages finish; the
//! messages wait in the broker, and the other line keeps flowing.
//!
//! Two things close a gate: an operator's pause of the whole line ([`LineSwitches::pause`]),
//! and the freeze machinery ([`LineSwitches::set_frozen`]): an order over a whole line stops
//! its events, and a thaw closes both kinds while the backlog is processed, so that nothing
//! new overtakes what was held.

use contracts::{Line, MessageKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::watch;

const KINDS: [MessageKind; 2] = [MessageKind::Command, MessageKind::Event];

#[derive(Default, Clone, Copy)]
struct Reasons {
    paused: bool,
    frozen: bool,
}

struct Gate {
    reasons: Mutex<Reasons>,
    /// `true` = closed.
    tx: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct LineSwitches {
    inner: Arc<HashMap<(Line, MessageKind), Gate>>,
}

impl Default for LineSwitches {
    fn default() -> Self {
        let mut inner = HashMap::new();
        for l in Line::ALL {
            for k in KINDS {
                inner.insert(
                    (l, k),
                    Gate {
                        reasons: Mutex::default(),
                        tx: watch::channel(false).0,
                    },
                );
            }
        }
        LineSwitches {
            inner: Arc::new(inner),
        }
    }
}

fn kind_label(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Command => "commands",
        MessageKind::Event => "events",
    }
}

impl LineSwitches {
    fn gate(&self, line: Line, kind: MessageKind) -> &Gate {
        self.inner
            .get(&(line, kind))
            .expect("every line and kind has a gate")
    }

    fn update(&self, line: Line, kind: MessageKind, f: impl FnOnce(&mut Reasons)) {
        let gate = self.gate(line, kind);
        let closed = {
            let mut r = gate.reasons.lock().expect("gate lock");
            f(&mut r);
            r.paused || r.frozen
        };
        gate.tx.send_if_modified(|c| {
            let changed = *c != closed;
            *c = closed;
            changed
        });
        metrics::gauge!("queue_gate_closed", "line" => line.as_str(), "kind" => kind_label(kind))
            .set(if closed { 1.0 } else { 0.0 });
    }

    /// An operator's pause: both kinds of `line` stop until [`resume`](Self::resume).
    pub fn pause(&self, line: Line) {
        for k in KINDS {
            self.update(line, k, |r| r.paused = true);
        }
        metrics::gauge!("line_paused", "line" => line.as_str()).set(1.0);
        tracing::info!(%line, "line paused");
    }

    pub fn resume(&self, line: Line) {
        for k in KINDS {
            self.update(line, k, |r| r.paused = false);
        }
        metrics::gauge!("line_paused", "line" => line.as_str()).set(0.0);
        tracing::info!(%line, "line resumed");
    }

    /// The freeze machinery's side of the gate of `line`'s `kind` queues.
    pub fn set_frozen(&self, line: Line, kind: MessageKind, frozen: bool) {
        let before = self.gate(line, kind).reasons.lock().expect("gate lock").frozen;
        if before != frozen {
            tracing::info!(%line, kind = kind_label(kind), frozen, "freeze gate changed");
        }
        self.update(line, kind, |r| r.frozen = frozen);
    }

    /// Paused by an operator.
    pub fn is_paused(&self, line: Line) -> bool {
        self.gate(line, MessageKind::Command)
            .reasons
            .lock()
            .expect("gate lock")
            .paused
    }

    /// Whether `line`'s `kind` queues are not being consumed now (for any reason).
    pub fn is_closed(&self, line: Line, kind: MessageKind) -> bool {
        *self.gate(line, kind).tx.borrow()
    }

    /// A receiver that sees every change of the gate of `line`'s `kind` queues (`true` =
    /// closed).
    pub fn watch(&self, line: Line, kind: MessageKind) -> watch::Receiver<bool> {
        self.gate(line, kind).tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_opens_only_when_neither_pause_nor_freeze_holds_it() {
        let s = LineSwitches::default();
        let rx = s.watch(Line::Medical, MessageKind::Event);
        s.set_frozen(Line::Medical, MessageKind::Event, true);
        assert!(*rx.borrow());
        assert!(
            !s.is_closed(Line::Medical, MessageKind::Command),
            "commands still flow"
        );
        assert!(
            !s.is_closed(Line::Social, MessageKind::Event),
            "the other line is untouched"
        );
        s.pause(Line::Medical);
        s.set_frozen(Line::Medical, MessageKind::Event, false);
        assert!(*rx.borrow(), "still paused");
        s.resume(Line::Medical);
        assert!(!*rx.borrow());
    }
}

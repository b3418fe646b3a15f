//! Order per aggregate (DESIGN.md §4): a message whose key is already running waits behind
//! it, in arrival order; a message with another key, or none, starts at once.

use std::collections::{HashMap, VecDeque};

/// Which keys are running and what waits behind each. Pure bookkeeping: the consumer loop
/// starts what this hands back.
pub(crate) struct Keyed<T> {
    /// Key → the items waiting behind the one that runs. Present = a message of that key runs.
    running: HashMap<String, VecDeque<T>>,
    waiting: usize,
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed {
            running: HashMap::new(),
            waiting: 0,
        }
    }
}

impl<T> Keyed<T> {
    /// `Some(item)` when it may start now; otherwise it is queued behind its key.
    pub(crate) fn admit(&mut self, key: Option<&str>, item: T) -> Option<T> {
        let Some(key) = key else { return Some(item) };
        match self.running.get_mut(key) {
            Some(queue) => {
                queue.push_back(item);
                self.waiting += 1;
                None
            }
            None => {
                self.running.insert(key.to_owned(), VecDeque::new());
                Some(item)
            }
        }
    }

    /// The running message of `key` is done: the next one of that key, if any, starts.
    pub(crate) fn finished(&mut self, key: &str) -> Option<T> {
        let queue = self.running.get_mut(key)?;
        match queue.pop_front() {
            Some(next) => {
                self.waiting -= 1;
                Some(next)
            }
            None => {
                self.running.remove(key);
                None
            }
        }
    }

    /// Messages held behind a running one of the same key.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Everything still waiting (at shutdown: returned to the queue unprocessed).
    pub(crate) fn take_waiting(&mut self) -> Vec<T> {
        self.waiting = 0;
        self.running.drain().flat_map(|(_, q)| q).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_runs_in_arrival_order_others_in_parallel() {
        let mut k = Keyed::default();
        assert_eq!(k.admit(Some("a"), 1), Some(1));
        assert_eq!(k.admit(Some("a"), 2), None);
        assert_eq!(k.admit(Some("b"), 3), Some(3), "another key is not held");
        assert_eq!(k.admit(None, 4), Some(4), "no key is never held");
        assert_eq!(k.admit(Some("a"), 5), None);
        assert_eq!(k.waiting(), 2);
        assert_eq!(k.finished("a"), Some(2));
        assert_eq!(k.finished("a"), Some(5));
        assert_eq!(k.finished("a"), None);
        assert_eq!(k.admit(Some("a"), 6), Some(6), "the key is free again");
        assert_eq!(k.finished("b"), None);
        assert_eq!(k.waiting(), 0);
        assert_eq!(k.admit(Some("a"), 7), None);
        assert_eq!(k.take_waiting(), vec![7]);
    }
}

//! How a message leaves: a provider takes a number and a text and answers with the provider's
//! id of every part; delivery receipts come back on a channel, each with its [`Ack`]: the
//! provider is told a receipt was taken only once it is recorded (at least once: a receipt
//! not acknowledged is delivered again, and recording one twice changes nothing). SMPP is the one provider today
//! ([`smpp`]); an HTTP SMS gateway would be another implementation of [`Provider`] and touch
//! nothing else.

pub mod smpp;

use async_trait::async_trait;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct SmsSettings {
    /// `smpp`.
    pub provider: String,
    /// The SMSC, `host:port`.
    pub address: String,
    pub system_id: String,
    pub password: String,
    pub source_addr: String,
    pub window: usize,
    pub submits_per_second: u32,
    pub enquire_link_ms: u64,
    pub response_timeout_ms: u64,
    pub max_attempts: i32,
    pub retry_ms: u64,
    pub throttle_backoff_ms: u64,
    pub batch: i64,
    pub poll_ms: u64,
    pub receipt_timeout_ms: u64,
}

/// Why a submit did not go through, and what the sender does about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The SMSC asks us to slow down (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`): back off, resubmit.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Connection lost, no response in time, SMSC system error: retry later.
    #[error("temporary: {0}")]
    Temporary(String),
    /// The SMSC refused the message for good (an invalid number, ...).
    #[error("refused: {0}")]
    Permanent(String),
}

/// The final state a delivery receipt reports for one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Failed,
    Expired,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The id the provider gave the part at submit.
    pub id: String,
    pub outcome: Outcome,
    /// The receipt's `stat:` and `err:`.
    pub detail: String,
}

/// Acknowledges one receipt to the provider (SMPP: sends its `deliver_sm_resp`). Call
/// [`Ack::send`] once the receipt is recorded, and not before: a receipt whose ack is
/// dropped unsent is not acknowledged, and the provider delivers it again.
#[must_use = "a receipt not acknowledged is delivered again"]
pub struct Ack(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Ack {
    pub fn new(ack: impl FnOnce() + Send + Sync + 'static) -> Self {
        Ack(Some(Box::new(ack)))
    }

    /// An ack that acknowledges nothing (a provider without acknowledgements, tests).
    pub fn none() -> Self {
        Ack(None)
    }

    pub fn send(mut self) {
        if let Some(ack) = self.0.take() {
            ack();
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Ack" } else { "Ack(none)" })
    }
}

/// A receipt as the provider hands it on, with what acknowledges it.
#[derive(Debug)]
pub struct IncomingReceipt {
    pub receipt: Receipt,
    pub ack: Ack,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Submits one message to `to`, split into as many parts as it needs; the provider's id
    /// of each part, in order.
    async fn submit(&self, to: &str, text: &str) -> Result<Vec<String>, SubmitError>;
}

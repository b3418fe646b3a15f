//! How a message leaves: a provider takes a number and a text and answers with the provider's
//! id of every part; delivery receipts come back on a channel. SMPP is the one provider today
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

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Submits one message to `to`, split into as many parts as it needs; the provider's id
    /// of each part, in order.
    async fn submit(&self, to: &str, text: &str) -> Result<Vec<String>, SubmitError>;
}

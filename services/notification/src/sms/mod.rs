//! How a message leaves: a provider takes a number, a text and our reference for the message
//! and answers with the provider's id of every part; delivery receipts come back on a channel, each with its [`Ack`]: the
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
    /// How long the SMSC may try to deliver a message (SMPP `validity_period`, relative);
    /// 0: the SMSC's own default, and then `receipt_timeout_ms` stands for it. A message
    /// the SMSC took reports its final state by then.
    pub validity_ms: u64,
    /// How long after the validity a receipt may still take to come back. A submit whose
    /// outcome is unknown (no answer: a crash, a lost connection, a timeout) that no receipt
    /// has named by `validity_ms + receipt_grace_ms` never reached the SMSC, and is sent again.
    pub receipt_grace_ms: u64,
}

/// Why a submit did not go through, and what the sender does about it. `Throttled`,
/// `Temporary` and `Permanent` are known outcomes: the SMSC did not take the message (it
/// said so, or it was never sent). `Unknown` and `Partial` are not, and are never simply
/// sent again: the SMSC may hold the message, and its receipts will tell.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The SMSC asks us to slow down (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`): back off, resubmit.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Not taken, and may be tried again later: not bound, the connection gone before the
    /// submit was written, an SMSC system error.
    #[error("temporary: {0}")]
    Temporary(String),
    /// The SMSC refused the message for good (an invalid number, ...).
    #[error("refused: {0}")]
    Permanent(String),
    /// The submit went out and no answer came (no `submit_sm_resp` in time, the connection
    /// lost meanwhile): the SMSC may have taken it.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The first parts of a concatenated message were taken and a later one was not (or its
    /// outcome is unknown): sending the whole again would show the phone those parts twice.
    #[error("{} of {total} parts taken, then {why}", accepted.len())]
    Partial {
        accepted: Vec<String>,
        total: usize,
        why: Box<SubmitError>,
    },
}

/// One message to send: the number, the text, and our reference for it (the sender's, one
/// per attempt). The provider hands the reference to the SMSC with every part (SMPP
/// `user_message_reference`), and receipts give it back: a message whose provider ids were
/// never recorded is still known by it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub reference: Option<u16>,
    /// Parts the SMSC already has (a message resumed): only the ones after them are sent,
    /// as they were the first time (the same reference).
    pub skip: usize,
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
    /// Our reference for the message, when the receipt gives it back.
    pub reference: Option<u16>,
    /// The number the message went to (the receipt's originator), when given.
    pub phone: Option<String>,
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
    /// Sends one message, split into as many parts as it needs; the provider's id of each
    /// part, in order.
    async fn send(&self, message: &Outgoing<'_>) -> Result<Vec<String>, SubmitError>;

    /// How many parts `text` is sent in (each has its own receipt); 1 for a provider that
    /// sends a text whole.
    fn parts(&self, to: &str, text: &str) -> usize {
        let _ = (to, text);
        1
    }

    /// [`Provider::send`] without a reference.
    async fn submit(&self, to: &str, text: &str) -> Result<Vec<String>, SubmitError> {
        self.send(&Outgoing {
            to,
            text,
            reference: None,
            skip: 0,
        })
        .await
    }
}

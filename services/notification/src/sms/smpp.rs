//! The service as an SMPP 3.4 ESME: one transceiver session to the SMSC, kept bound (a lost
//! connection is re-established with backoff), `enquire_link` every `enquire_link_ms`, at most
//! `window` submits waiting for their response, Chinese text as UCS-2 split into concatenated
//! parts (8-bit reference UDH), and every `deliver_sm` receipt handed on with an [`Ack`] that
//! sends its `deliver_sm_resp` once the receipt is recorded: a receipt is the SMSC's until we
//! answer it, and one we did not answer (the process died, the session ended first) the SMSC
//! delivers again. A `deliver_sm` that is not a receipt we can read is answered at once.
//!
//! Every part carries the message's reference (`user_message_reference`) and a relative
//! `validity_period`; receipts give the reference back (with the phone as `source_addr`), so
//! a part whose id was never recorded still names its message. The parts of a message go
//! out one after the other: a later part throttled or failing for the moment is sent again
//! by itself (the same PDU, the same concatenation reference), never the parts already
//! taken. A submit written and never answered (no `submit_sm_resp` in time, the connection
//! lost meanwhile) is [`SubmitError::Unknown`]: the SMSC may hold it. SMPP has no idempotent
//! submit, and `query_sm` needs the message id, which is exactly what such a submit lacks.

use super::{Ack, IncomingReceipt, Outcome, Outgoing, Provider, Receipt, SmsSettings, SubmitError};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, EmptyOrFullCOctetString};
use rusmpp::values::{InterfaceVersion, Npi, RegisteredDelivery, Ton, UserMessageReference};
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Result<Option<String>, SubmitError>>>>>;

/// One bound session: its writer, the submits waiting for a response, the receipts handed on
/// and not answered yet, and whether it is over.
struct Session {
    out: mpsc::UnboundedSender<Command>,
    pending: Pending,
    seq: AtomicU32,
    closed: CancellationToken,
    unanswered: Arc<AtomicUsize>,
}

/// Counts a receipt handed on until its ack is sent or dropped.
struct Unanswered(Arc<AtomicUsize>);

impl Unanswered {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Unanswered(count.clone())
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Session {
    fn next_seq(&self) -> u32 {
        // Sequence numbers run 1..=0x7FFFFFFF and wrap.
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        (n % 0x7FFF_FFFE) + 1
    }
}

pub struct SmppProvider {
    settings: SmsSettings,
    session: watch::Receiver<Option<Arc<Session>>>,
    /// Messages between their first part and their last: a stop waits for them (a message
    /// cut between parts would be left for the next start to complete).
    sending: Arc<AtomicUsize>,
    window: Semaphore,
    reference: AtomicU8,
}

impl SmppProvider {
    /// Starts the session keeper; receipts go to `receipts`, each to be acknowledged when it
    /// is recorded. Submits wait for a bound session.
    pub fn start(
        settings: SmsSettings,
        receipts: mpsc::UnboundedSender<IncomingReceipt>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (tx, rx) = watch::channel(None);
        let sending = Arc::new(AtomicUsize::new(0));
        let provider = Arc::new(SmppProvider {
            window: Semaphore::new(settings.window.max(1)),
            settings: settings.clone(),
            session: rx,
            sending: sending.clone(),
            reference: AtomicU8::new(0),
        });
        tokio::spawn(keep_bound(settings, tx, receipts, sending, stop));
        provider
    }

    async fn bound(&self) -> Result<Arc<Session>, SubmitError> {
        let mut rx = self.session.clone();
        let wait = Duration::from_millis(self.settings.response_timeout_ms);
        let found = tokio::time::timeout(wait, async {
            loop {
                if let Some(s) = rx.borrow_and_update().clone()
                    && !s.closed.is_cancelled()
                {
                    return Some(s);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(s)) => Ok(s),
            _ => Err(SubmitError::Temporary(format!(
                "not bound to the SMSC at {}",
                self.settings.address
            ))),
        }
    }

    /// The parts of one message: UCS-2, concatenated when longer than one SMS (70 characters),
    /// each with the message's reference and the validity.
    fn pdus(
        &self,
        to: &str,
        text: &str,
        reference: Option<u16>,
        concatenation: u8,
    ) -> Result<Vec<SubmitSm>, SubmitError> {
        let bad = |what: &str, e: String| SubmitError::Permanent(format!("{what}: {e}"));
        let mut base = SubmitSm::builder()
            .source_addr_ton(Ton::Unknown)
            .source_addr_npi(Npi::Unknown)
            .source_addr(
                COctetString::from_str(&self.settings.source_addr)
                    .map_err(|e| bad("source_addr", e.to_string()))?,
            )
            .dest_addr_ton(Ton::Unknown)
            .dest_addr_npi(Npi::Isdn)
            .destination_addr(COctetString::from_str(to).map_err(|e| bad("destination", e.to_string()))?)
            // A receipt for the final outcome, success or failure.
            .registered_delivery(RegisteredDelivery::from(0x01));
        if let Some(v) = relative_validity(self.settings.validity_ms) {
            base = base.validity_period(
                EmptyOrFullCOctetString::from_str(&v).map_err(|e| bad("validity_period", e.to_string()))?,
            );
        }
        if let Some(r) = reference {
            base = base.push_tlv(MessageSubmissionRequestTlvValue::UserMessageReference(
                UserMessageReference::new(r),
            ));
        }
        base.build()
            .multipart(text)
            .ucs2()
            .reference_u8(concatenation)
            .build()
            .map_err(|e| bad("text", e.to_string()))
    }

    async fn submit_part(&self, session: &Session, part: SubmitSm) -> Result<String, SubmitError> {
        let _permit = self.window.acquire().await.expect("the window is never closed");
        if session.closed.is_cancelled() {
            return Err(SubmitError::Temporary("the SMSC connection closed".into()));
        }
        let seq = session.next_seq();
        let (tx, rx) = oneshot::channel();
        session.pending.lock().expect("pending").insert(seq, tx);
        if session
            .out
            .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::SubmitSm(part)))
            .is_err()
        {
            // Never handed to the connection: not sent.
            session.pending.lock().expect("pending").remove(&seq);
            return Err(SubmitError::Temporary("the SMSC connection closed".into()));
        }
        let wait = Duration::from_millis(self.settings.response_timeout_ms);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(Some(id)))) => Ok(id),
            // Taken (ESME_ROK) without an id: no receipt can be matched to it by id.
            Ok(Ok(Ok(None))) => Err(SubmitError::Unknown("submit_sm_resp without a message id".into())),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(SubmitError::Unknown(
                "the SMSC connection closed before the submit_sm_resp".into(),
            )),
            Err(_) => {
                session.pending.lock().expect("pending").remove(&seq);
                Err(SubmitError::Unknown(format!("no submit_sm_resp within {wait:?}")))
            }
        }
    }

    /// Submits a later part again by itself while the SMSC throttles it, refuses it for the
    /// moment, or its answer is lost (the parts before it are taken: the message cannot start
    /// over; a part the SMSC had after all reaches the phone twice under one concatenation
    /// reference and part number, which a phone shows once), on whichever session is bound,
    /// at most `max_attempts` times.
    async fn submit_later_part(&self, part: SubmitSm) -> Result<String, SubmitError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match self.bound().await {
                Ok(session) => self.submit_part(&session, part.clone()).await,
                Err(e) => Err(e),
            };
            let pause = match &result {
                Err(SubmitError::Throttled(_)) => self.settings.throttle_backoff_ms,
                Err(SubmitError::Temporary(_) | SubmitError::Unknown(_)) => self.settings.retry_ms,
                _ => return result,
            };
            if tries >= self.settings.max_attempts.max(1) {
                return result;
            }
            tokio::time::sleep(Duration::from_millis(pause.max(10))).await;
        }
    }
}

/// Counts a message in [`SmppProvider::sending`] while it lives.
struct Sending<'a>(&'a AtomicUsize);

impl<'a> Sending<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Sending(count)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// SMPP's relative time (`YYMMDDhhmmss000R`) for `ms`, at most 99 days; `None` for 0.
pub fn relative_validity(ms: u64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    let secs = (ms / 1000).clamp(1, 99 * 86_400 + 86_399);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    Some(format!(
        "0000{days:02}{:02}{:02}{:02}000R",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

#[async_trait]
impl Provider for SmppProvider {
    async fn send(&self, message: &Outgoing<'_>) -> Result<Vec<String>, SubmitError> {
        // The concatenation reference follows ours, so that a message resumed gets the parts
        // it lacks under the reference its first parts had.
        let concatenation = match message.reference {
            Some(r) => r as u8,
            None => self.reference.fetch_add(1, Ordering::Relaxed),
        };
        let pdus = self.pdus(message.to, message.text, message.reference, concatenation)?;
        let total = pdus.len();
        let pdus: Vec<SubmitSm> = pdus.into_iter().skip(message.skip).collect();
        let session = self.bound().await?;
        // Counted until the last part is answered: a stop lets the message finish.
        let _sending = Sending::new(&self.sending);
        // One part after the other, the ids in part order. Until a part is taken the whole
        // message can be sent again; after it, only the part that did not go.
        let mut accepted: Vec<String> = Vec::with_capacity(total);
        for part in pdus {
            let result = if accepted.is_empty() {
                self.submit_part(&session, part).await
            } else {
                self.submit_later_part(part).await
            };
            match result {
                Ok(id) => accepted.push(id),
                Err(e) if accepted.is_empty() => return Err(e),
                Err(why) => {
                    return Err(SubmitError::Partial {
                        accepted,
                        total,
                        why: Box::new(why),
                    });
                }
            }
        }
        Ok(accepted)
    }

    fn parts(&self, to: &str, text: &str) -> usize {
        self.pdus(to, text, None, 0).map_or(1, |p| p.len())
    }
}

/// What a submit's response status means.
pub fn classify(status: CommandStatus) -> Result<(), SubmitError> {
    match status {
        CommandStatus::EsmeRok => Ok(()),
        CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful => {
            Err(SubmitError::Throttled(format!("{status:?}")))
        }
        CommandStatus::EsmeRsyserr | CommandStatus::EsmeRinvbndsts | CommandStatus::EsmeRsubmitfail => {
            Err(SubmitError::Temporary(format!("{status:?}")))
        }
        other => Err(SubmitError::Permanent(format!("{other:?}"))),
    }
}

/// Binds, serves the session until it ends, and binds again after a pause that grows to 10 s.
async fn keep_bound(
    settings: SmsSettings,
    publish: watch::Sender<Option<Arc<Session>>>,
    receipts: mpsc::UnboundedSender<IncomingReceipt>,
    sending: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match bind(&settings).await {
            Ok(framed) => {
                backoff = Duration::from_millis(200);
                metrics::counter!("notification_smpp_binds_total").increment(1);
                tracing::info!(smsc = %settings.address, "bound to the SMSC as a transceiver");
                serve(&settings, framed, &publish, &receipts, &sending, &stop).await;
                let _ = publish.send(None);
                metrics::gauge!("notification_smpp_bound").set(0.0);
                if !stop.is_cancelled() {
                    tracing::warn!(smsc = %settings.address, "SMSC session ended; binding again");
                }
            }
            Err(e) => {
                tracing::warn!(smsc = %settings.address, error = %e, "could not bind to the SMSC");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn bind(settings: &SmsSettings) -> anyhow::Result<Framed<TcpStream, CommandCodec>> {
    let wait = Duration::from_millis(settings.response_timeout_ms);
    let stream = tokio::time::timeout(wait, TcpStream::connect(&settings.address)).await??;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, CommandCodec::new());
    let bind = BindTransceiver::builder()
        .system_id(
            COctetString::from_str(&settings.system_id).map_err(|e| anyhow::anyhow!("system_id: {e}"))?,
        )
        .password(COctetString::from_str(&settings.password).map_err(|e| anyhow::anyhow!("password: {e}"))?)
        .system_type(COctetString::empty())
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build();
    framed
        .send(Command::new(
            CommandStatus::EsmeRok,
            1,
            Pdu::BindTransceiver(bind),
        ))
        .await?;
    let answer = tokio::time::timeout(wait, async {
        while let Some(c) = framed.next().await {
            let c = c?;
            if let Some(Pdu::BindTransceiverResp(_)) = c.pdu() {
                return Ok::<_, anyhow::Error>(c.status());
            }
        }
        anyhow::bail!("the SMSC closed the connection during the bind")
    })
    .await??;
    anyhow::ensure!(
        answer == CommandStatus::EsmeRok,
        "bind_transceiver refused: {answer:?}"
    );
    Ok(framed)
}

async fn serve(
    settings: &SmsSettings,
    framed: Framed<TcpStream, CommandCodec>,
    publish: &watch::Sender<Option<Arc<Session>>>,
    receipts: &mpsc::UnboundedSender<IncomingReceipt>,
    sending: &AtomicUsize,
    stop: &CancellationToken,
) {
    let (mut sink, mut stream) = framed.split();
    let (out, mut rx) = mpsc::unbounded_channel::<Command>();
    let session = Arc::new(Session {
        out: out.clone(),
        pending: Arc::default(),
        seq: AtomicU32::new(2),
        closed: CancellationToken::new(),
        unanswered: Arc::default(),
    });
    let closed = session.closed.clone();
    let writer = tokio::spawn({
        let closed = closed.clone();
        async move {
            while let Some(cmd) = rx.recv().await {
                if sink.send(cmd).await.is_err() {
                    break;
                }
            }
            closed.cancel();
            let _ = sink.close().await;
        }
    });
    let _ = publish.send(Some(session.clone()));
    metrics::gauge!("notification_smpp_bound").set(1.0);
    let link_every = Duration::from_millis(settings.enquire_link_ms.max(100));
    let response_timeout = Duration::from_millis(settings.response_timeout_ms);
    let mut link = tokio::time::interval(link_every);
    link.tick().await;
    let mut link_sent: Option<tokio::time::Instant> = None;
    // At shutdown the session first waits for the responses of the submits in flight and for
    // the messages between their parts to finish (the SMSC may have accepted them: giving up
    // leaves them for the next start to settle or complete), and for
    // the receipts handed on to be recorded and answered (else the SMSC sends them again
    // after the restart, which is harmless but slower), then unbinds.
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        if let Some(until) = draining
            && ((session.pending.lock().expect("pending").is_empty()
                && sending.load(Ordering::SeqCst) == 0
                && session.unanswered.load(Ordering::SeqCst) == 0)
                || tokio::time::Instant::now() >= until)
        {
            let _ = out.send(Command::new(
                CommandStatus::EsmeRok,
                session.next_seq(),
                Pdu::Unbind,
            ));
            break;
        }
        let next = tokio::select! {
            _ = stop.cancelled(), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + response_timeout);
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if draining.is_some() => continue,
            _ = closed.cancelled() => break,
            _ = link.tick() => {
                if let Some(at) = link_sent && at.elapsed() > response_timeout {
                    tracing::warn!("no enquire_link_resp from the SMSC; closing the session");
                    break;
                }
                if link_sent.is_none() {
                    link_sent = Some(tokio::time::Instant::now());
                    let _ = out.send(Command::new(CommandStatus::EsmeRok, session.next_seq(), Pdu::EnquireLink));
                }
                continue;
            }
            n = stream.next() => n,
        };
        let cmd = match next {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "undecodable PDU from the SMSC; closing the session");
                break;
            }
            None => break,
        };
        let seq = cmd.sequence_number();
        let status = cmd.status();
        match cmd.pdu() {
            Some(Pdu::SubmitSmResp(resp)) => {
                let waiter = session.pending.lock().expect("pending").remove(&seq);
                if let Some(w) = waiter {
                    let answer = classify(status).map(|()| {
                        let id = resp.message_id().as_str().to_owned();
                        (!id.is_empty()).then_some(id)
                    });
                    let _ = w.send(answer);
                }
            }
            Some(Pdu::GenericNack) => {
                if let Some(w) = session.pending.lock().expect("pending").remove(&seq) {
                    let _ = w.send(Err(SubmitError::Temporary(format!("generic_nack {status:?}"))));
                }
            }
            Some(Pdu::DeliverSm(dsm)) => {
                let text = String::from_utf8_lossy(dsm.short_message().as_ref()).into_owned();
                let tlv_id = dsm.tlvs().iter().find_map(|t| match t.value() {
                    Some(TlvValue::ReceiptedMessageId(v)) => Some(v.as_str().to_owned()),
                    _ => None,
                });
                let reference = dsm.tlvs().iter().find_map(|t| match t.value() {
                    Some(TlvValue::UserMessageReference(r)) => Some(u16::from(*r)),
                    _ => None,
                });
                let phone = Some(dsm.source_addr.as_str().to_owned()).filter(|p| !p.is_empty());
                match parse_receipt(&text, tlv_id).map(|r| Receipt {
                    reference,
                    phone,
                    ..r
                }) {
                    // Answered when its batch has committed, on this session only (the
                    // sequence number is this session's); if the send fails the ack is
                    // dropped unsent and the SMSC delivers the receipt again.
                    Some(receipt) => {
                        let ack = answer_later(&session, seq);
                        let _ = receipts.send(IncomingReceipt { receipt, ack });
                    }
                    // Not a receipt we can read (nor ever will): answered now, or the SMSC
                    // would send it again forever.
                    None => {
                        tracing::warn!(%text, "a deliver_sm that is not a readable receipt; answered and dropped");
                        let _ = out.send(Command::new(
                            CommandStatus::EsmeRok,
                            seq,
                            Pdu::DeliverSmResp(DeliverSmResp::default()),
                        ));
                    }
                }
            }
            Some(Pdu::EnquireLink) => {
                let _ = out.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp));
            }
            Some(Pdu::EnquireLinkResp) => link_sent = None,
            Some(Pdu::Unbind) => {
                let _ = out.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                break;
            }
            Some(Pdu::UnbindResp) => break,
            _ => {}
        }
    }
    closed.cancel();
    // Every submit still waiting learns that the connection is gone: written and never
    // answered, the SMSC may have taken it (its receipt will tell).
    let waiting: Vec<_> = session.pending.lock().expect("pending").drain().collect();
    for (_, w) in waiting {
        let _ = w.send(Err(SubmitError::Unknown(
            "the SMSC connection was lost before the submit_sm_resp".into(),
        )));
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

/// The ack of the `deliver_sm` `seq` of `session`: its `deliver_sm_resp`, unless the session
/// is over by then (a resp on another session would answer another PDU; the SMSC sends an
/// unanswered receipt again after the rebind).
fn answer_later(session: &Session, seq: u32) -> Ack {
    // Weak: a receipt waiting to be recorded does not keep the session's writer alive.
    let out = session.out.downgrade();
    let closed = session.closed.clone();
    let counted = Unanswered::new(&session.unanswered);
    Ack::new(move || {
        let _counted = counted;
        if closed.is_cancelled() {
            tracing::debug!(seq, "the receipt's session is over; the SMSC will send it again");
            return;
        }
        if let Some(out) = out.upgrade() {
            let _ = out.send(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::DeliverSmResp(DeliverSmResp::default()),
            ));
        }
    })
}

/// Reads a delivery receipt (SMPP 3.4 Appendix B: `id:… stat:DELIVRD err:000 …`); the
/// `receipted_message_id` TLV, when present, names the part.
pub fn parse_receipt(text: &str, tlv_id: Option<String>) -> Option<Receipt> {
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .map(str::to_owned)
    };
    let id = tlv_id.filter(|s| !s.is_empty()).or_else(|| field("id"))?;
    let stat = field("stat")?;
    let outcome = match stat.as_str() {
        "DELIVRD" | "ACCEPTD" => Outcome::Delivered,
        "EXPIRED" => Outcome::Expired,
        "UNDELIV" | "REJECTD" | "DELETED" | "UNKNOWN" => Outcome::Failed,
        _ => return None,
    };
    let err = field("err").unwrap_or_default();
    Some(Receipt {
        id,
        outcome,
        detail: format!("stat:{stat} err:{err}"),
        reference: None,
        phone: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_read_from_the_appendix_b_text() {
        let r = parse_receipt(
            "id:0000000042 sub:001 dlvrd:001 submit date:2412011200 done date:2412011200 stat:DELIVRD err:000 text:",
            None,
        )
        .expect("a receipt");
        assert_eq!(r.id, "0000000042");
        assert_eq!(r.outcome, Outcome::Delivered);
        let r = parse_receipt("id:7 stat:UNDELIV err:001", Some("0000000007".into())).expect("a receipt");
        assert_eq!((r.id.as_str(), r.outcome), ("0000000007", Outcome::Failed));
        assert_eq!(
            parse_receipt("id:7 stat:EXPIRED", None).map(|r| r.outcome),
            Some(Outcome::Expired)
        );
        assert_eq!(parse_receipt("hello", None), None);
    }

    #[test]
    fn validity_is_written_in_smpp_relative_time() {
        assert_eq!(relative_validity(0), None);
        assert_eq!(relative_validity(86_400_000).as_deref(), Some("000001000000000R"));
        assert_eq!(relative_validity(5_400_500).as_deref(), Some("000000013000000R"));
        assert_eq!(
            relative_validity(200 * 86_400_000).as_deref(),
            Some("000099235959000R")
        );
    }

    #[test]
    fn throttling_is_told_apart_from_a_refusal() {
        assert!(matches!(
            classify(CommandStatus::EsmeRthrottled),
            Err(SubmitError::Throttled(_))
        ));
        assert!(matches!(
            classify(CommandStatus::EsmeRmsgqful),
            Err(SubmitError::Throttled(_))
        ));
        assert!(matches!(
            classify(CommandStatus::EsmeRinvdstadr),
            Err(SubmitError::Permanent(_))
        ));
        assert!(classify(CommandStatus::EsmeRok).is_ok());
    }

    fn settings() -> SmsSettings {
        SmsSettings {
            provider: "smpp".into(),
            address: "127.0.0.1:1".into(),
            system_id: "s".into(),
            password: "p".into(),
            source_addr: "12333".into(),
            window: 1,
            submits_per_second: 0,
            enquire_link_ms: 1000,
            response_timeout_ms: 1000,
            max_attempts: 1,
            retry_ms: 1,
            throttle_backoff_ms: 1,
            batch: 1,
            poll_ms: 1,
            receipt_timeout_ms: 1,
            validity_ms: 86_400_000,
            receipt_grace_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_long_chinese_text_is_split_into_ucs2_parts_and_a_short_one_is_not() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let p = SmppProvider::start(settings(), tx, CancellationToken::new());
        let short = p.pdus("13900000001", "您好", Some(7), 1).expect("parts");
        assert_eq!(short.len(), 1);
        assert_eq!(u8::from(short[0].data_coding), 0x08);
        let long: String = "医疗保障信息系统切换公告".repeat(10);
        let parts = p.pdus("13900000001", &long, Some(7), 2).expect("parts");
        assert_eq!(
            parts.len(),
            2,
            "120 characters in UCS-2 take two 67-character parts"
        );
        for part in &parts {
            assert_ne!(u8::from(part.esm_class) & 0x40, 0, "UDHI set");
            let reference = part.tlvs().iter().find_map(|t| match t.value() {
                Some(TlvValue::UserMessageReference(r)) => Some(u16::from(*r)),
                _ => None,
            });
            assert_eq!(reference, Some(7), "every part names the message");
            assert_eq!(part.validity_period.to_string(), "000001000000000R");
        }
        assert_eq!(p.parts("13900000001", &long), 2);
    }
}

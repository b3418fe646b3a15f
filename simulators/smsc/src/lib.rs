//! An SMS centre (SMSC) over SMPP 3.4, for tests and `make run`: it accepts transceiver binds
//! with a system id and password, answers `submit_sm` with message ids, reassembles
//! concatenated UCS-2 messages, and sends a delivery receipt (`deliver_sm`) for every part
//! after a delay. It can be told to throttle (every n-th submit is answered
//! `ESME_RTHROTTLED`), to fail some numbers (their receipts say `UNDELIV`), and to drop the
//! connection once after a number of submits. Everything it receives is kept (and, when
//! configured, appended to a JSON-lines file and printed), so tests and people can read the
//! messages.
//!
//! A receipt names the part by `receipted_message_id` and, when the submit carried one, gives
//! back its `user_message_reference` (SMPP 3.4 §5.3.2.17: the ESME's own reference for the
//! message), with the phone as `source_addr`: an ESME that lost the message id (it crashed
//! between the `submit_sm_resp` and recording it) can still tell which message it was.
//! Two faults around a submit can be played, once each: the connection cut after a submit
//! was accepted and before its response (`drop_before_response`), and a submit lost unread
//! with the connection (`lose_submit`).
//!
//! A receipt is the SMSC's until the ESME answers it: a `deliver_sm` not answered with
//! `deliver_sm_resp` `ESME_ROK` is sent again on the next session (and, when
//! `receipt_resend_after` is set, on the same one after that long), and the simulator tells
//! which receipts were answered and which are still waiting, so a test can see when the ESME
//! acknowledged one. Receipts can be held (not sent) until a test lets them go.

use chrono::{DateTime, FixedOffset, Utc};
use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiverResp, DeliverSm, SubmitSm, SubmitSmResp};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessageState, UserMessageReference};
use rusmpp::{Command, CommandStatus, Pdu};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub system_id: String,
    pub password: String,
    /// Delay before each delivery receipt.
    pub receipt_delay: Duration,
    /// Every n-th `submit_sm` (counted over all sessions) is answered `ESME_RTHROTTLED`.
    pub throttle_every: Option<u64>,
    /// Destination numbers whose messages are not delivered (receipt `UNDELIV`).
    pub fail_numbers: Vec<String>,
    /// After this many accepted submits, the connection is dropped once (no unbind).
    pub drop_after: Option<u64>,
    /// The n-th submit (counted over all sessions) is accepted (recorded, its receipt due)
    /// and the connection is cut before its `submit_sm_resp` goes out: the ESME cannot know
    /// that it was taken. Once.
    pub drop_before_response: Option<u64>,
    /// The n-th submit (counted over all sessions) is lost with the connection, unread: not
    /// accepted, never answered, no receipt. Once.
    pub lose_submit: Option<u64>,
    /// The JSON-lines file every reassembled message is appended to.
    pub log_file: Option<std::path::PathBuf>,
    /// Print every reassembled message (`make run` shows them).
    pub print: bool,
    /// A receipt sent and not answered for this long is sent again on the same session (a
    /// real SMSC's response timer); `None`: only after the session ends, on the next one.
    pub receipt_resend_after: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:0".parse().expect("an address"),
            system_id: "insurance".into(),
            password: "secret".into(),
            receipt_delay: Duration::from_millis(100),
            throttle_every: None,
            fail_numbers: vec![],
            drop_after: None,
            drop_before_response: None,
            lose_submit: None,
            log_file: None,
            print: false,
            receipt_resend_after: None,
        }
    }
}

/// One short message as a phone would show it: all its parts joined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Received {
    pub destination: String,
    pub source: String,
    pub text: String,
    pub parts: u8,
    /// The SMSC message id of each part, in part order.
    pub message_ids: Vec<String>,
    pub delivered: bool,
    pub at: DateTime<FixedOffset>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub binds: u64,
    pub refused_binds: u64,
    pub submits: u64,
    pub throttled: u64,
    /// Receipts sent and not taken back (a receipt unanswered when its session ended, or for
    /// `receipt_resend_after`, is taken back, to be sent again).
    pub receipts: u64,
    /// Receipts the ESME answered with `deliver_sm_resp` `ESME_ROK`.
    pub receipts_answered: u64,
    /// Sends of a receipt sent before (unanswered when its session ended, or for
    /// `receipt_resend_after`).
    pub receipts_resent: u64,
    /// `enquire_link`s received from the ESME.
    pub enquire_links: u64,
    pub drops: u64,
}

/// A concatenated message so far: its part count, and each part's SMSC id and UTF-16 text.
type Partial = (u8, HashMap<u8, (String, Vec<u16>)>);

/// A receipt sent on a session and not yet answered.
struct Awaiting {
    /// The message id it reports.
    id: String,
    receipt: DeliverSm,
    sent: tokio::time::Instant,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Parts of concatenated messages: (destination, reference) -> (total, parts by number).
    partial: HashMap<(String, u16), Partial>,
    /// Receipts not yet sent, in the order they fall due; `true` for one sent before.
    receipts: std::collections::VecDeque<(tokio::time::Instant, DeliverSm, bool)>,
    /// Receipts sent and not answered yet, by (session number, sequence number).
    awaiting: HashMap<(u64, u32), Awaiting>,
    /// The message ids of the receipts answered `ESME_ROK`, in the order the answers came.
    answered: Vec<String>,
    /// While set, no receipt is sent (they stay due).
    held: bool,
    counters: Counters,
}

/// A running simulator.
#[derive(Clone)]
pub struct Smsc {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
    /// Cut every open session now (the SMSC "goes away"); new binds are still accepted.
    cut: Arc<tokio::sync::Notify>,
    /// How many cuts so far: a session that started before the last one ends even if it
    /// was busy (not waiting on `cut`) at that moment.
    cuts: Arc<AtomicU64>,
}

impl Smsc {
    /// Everything received so far, complete messages only, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("state").received.clone()
    }

    /// How many complete messages arrived (without copying them).
    pub fn received_count(&self) -> usize {
        self.state.lock().expect("state").received.len()
    }

    /// The messages to one number.
    pub fn received_by(&self, destination: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.destination == destination)
            .collect()
    }

    pub fn counters(&self) -> Counters {
        self.state.lock().expect("state").counters
    }

    /// The message ids of the receipts the ESME answered `ESME_ROK`, in answer order (a
    /// receipt sent and answered twice is listed twice).
    pub fn answered_receipts(&self) -> Vec<String> {
        self.state.lock().expect("state").answered.clone()
    }

    /// The message ids of the receipts sent and waiting for their `deliver_sm_resp` now.
    pub fn unanswered_receipts(&self) -> Vec<String> {
        let st = self.state.lock().expect("state");
        let mut ids: Vec<String> = st.awaiting.values().map(|a| a.id.clone()).collect();
        ids.sort();
        ids
    }

    /// How many receipts are due or falling due and not sent yet.
    pub fn receipts_not_sent(&self) -> usize {
        self.state.lock().expect("state").receipts.len()
    }

    /// Holds every receipt back (`true`) or lets them go (`false`): a held receipt stays
    /// due and is sent once released.
    pub fn hold_receipts(&self, held: bool) {
        self.state.lock().expect("state").held = held;
    }

    /// Drops every open session at once, as a network failure would.
    pub fn cut_sessions(&self) {
        self.cuts.fetch_add(1, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Binds the listener and serves until `stop`.
pub async fn start(cfg: SimConfig) -> anyhow::Result<Smsc> {
    let listener = TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let smsc = Smsc {
        addr,
        state: Arc::default(),
        stop: CancellationToken::new(),
        cut: Arc::new(tokio::sync::Notify::new()),
        cuts: Arc::default(),
    };
    let shared = Arc::new(Shared {
        cfg,
        next_id: AtomicU64::new(1),
        submits: AtomicU64::new(0),
        dropped_once: AtomicBool::new(false),
        sessions: AtomicU64::new(0),
    });
    let s = smsc.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = s.stop.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let (s, shared) = (s.clone(), shared.clone());
                    tokio::spawn(async move {
                        if let Err(e) = session(stream, s, shared).await {
                            tracing::debug!(%peer, error = %e, "session ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(smsc)
}

struct Shared {
    cfg: SimConfig,
    next_id: AtomicU64,
    submits: AtomicU64,
    dropped_once: AtomicBool,
    sessions: AtomicU64,
}

async fn session(stream: TcpStream, smsc: Smsc, shared: Arc<Shared>) -> anyhow::Result<()> {
    let framed = Framed::new(stream, CommandCodec::new());
    let (mut sink, mut stream) = framed.split();
    let (out, mut rx) = mpsc::unbounded_channel::<Command>();
    let writer = tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if sink.send(cmd).await.is_err() {
                break;
            }
        }
    });
    let mut bound = false;
    let me = shared.sessions.fetch_add(1, Ordering::SeqCst);
    let mut seq: u32 = 0x4000_0000;
    let mut receipts_tick = tokio::time::interval(Duration::from_millis(20));
    // Receipts sent and not yet answered with deliver_sm_resp are in `awaiting` under this
    // session's number: they go back to the store when the session ends, as a real SMSC
    // keeps a receipt until the ESME has acknowledged it.
    let cuts = smsc.cuts.load(Ordering::SeqCst);
    let result = loop {
        if smsc.cuts.load(Ordering::SeqCst) != cuts {
            smsc.state.lock().expect("state").counters.drops += 1;
            break Ok(());
        }
        let next = tokio::select! {
            _ = smsc.stop.cancelled() => break Ok(()),
            _ = receipts_tick.tick(), if bound => {
                let now = tokio::time::Instant::now();
                let mut guard = smsc.state.lock().expect("state");
                let st = &mut *guard;
                if st.held {
                    continue;
                }
                // Unanswered for too long: sent again, under a new sequence number.
                if let Some(after) = shared.cfg.receipt_resend_after {
                    let stale: Vec<(u64, u32)> = st
                        .awaiting
                        .iter()
                        .filter(|((s, _), a)| *s == me && now.duration_since(a.sent) >= after)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in stale {
                        let a = st.awaiting.remove(&k).expect("present");
                        st.receipts.push_front((now, a.receipt, true));
                        st.counters.receipts -= 1;
                    }
                }
                while st.receipts.front().is_some_and(|(due, _, _)| *due <= now) {
                    let (_, r, resent) = st.receipts.pop_front().expect("present");
                    seq = seq.wrapping_add(1).max(0x4000_0000);
                    let id = receipted_id(&r);
                    if out.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::DeliverSm(r.clone()))).is_err() {
                        st.receipts.push_front((now, r, resent));
                        break;
                    }
                    st.awaiting.insert((me, seq), Awaiting { id, receipt: r, sent: now });
                    st.counters.receipts += 1;
                    if resent {
                        st.counters.receipts_resent += 1;
                    }
                }
                continue;
            }
            _ = smsc.cut.notified() => {
                smsc.state.lock().expect("state").counters.drops += 1;
                break Ok(());
            }
            n = stream.next() => n,
        };
        let cmd = match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(anyhow::anyhow!("decode: {e}")),
            Some(Ok(c)) => c,
        };
        let n = cmd.sequence_number();
        match cmd.pdu() {
            Some(Pdu::BindTransceiver(b)) => {
                let ok = b.system_id.as_str() == shared.cfg.system_id
                    && b.password.as_str() == shared.cfg.password;
                let status = if ok {
                    CommandStatus::EsmeRok
                } else {
                    CommandStatus::EsmeRinvpaswd
                };
                {
                    let mut st = smsc.state.lock().expect("state");
                    if ok {
                        st.counters.binds += 1;
                    } else {
                        st.counters.refused_binds += 1;
                    }
                }
                let resp = BindTransceiverResp::builder()
                    .system_id(COctetString::from_str("SMSC-SIM").expect("a system id"))
                    .build();
                let _ = out.send(Command::new(status, n, Pdu::BindTransceiverResp(resp)));
                if !ok {
                    break Ok(());
                }
                bound = true;
            }
            Some(Pdu::EnquireLink) => {
                smsc.state.lock().expect("state").counters.enquire_links += 1;
                let _ = out.send(Command::new(CommandStatus::EsmeRok, n, Pdu::EnquireLinkResp));
            }
            Some(Pdu::Unbind) => {
                let _ = out.send(Command::new(CommandStatus::EsmeRok, n, Pdu::UnbindResp));
                break Ok(());
            }
            Some(Pdu::SubmitSm(sm)) => {
                if !bound {
                    let _ = out.send(Command::new(
                        CommandStatus::EsmeRinvbndsts,
                        n,
                        Pdu::SubmitSmResp(SubmitSmResp::default()),
                    ));
                    continue;
                }
                let count = shared.submits.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.cfg.lose_submit == Some(count) {
                    smsc.state.lock().expect("state").counters.drops += 1;
                    break Ok(());
                }
                if shared
                    .cfg
                    .throttle_every
                    .is_some_and(|every| every > 0 && count.is_multiple_of(every))
                {
                    smsc.state.lock().expect("state").counters.throttled += 1;
                    let _ = out.send(Command::new(
                        CommandStatus::EsmeRthrottled,
                        n,
                        Pdu::SubmitSmResp(SubmitSmResp::default()),
                    ));
                    continue;
                }
                let id = format!("{:010}", shared.next_id.fetch_add(1, Ordering::SeqCst));
                let destination = sm.destination_addr.as_str().to_owned();
                let failed = shared.cfg.fail_numbers.iter().any(|f| f == &destination);
                let reference = user_message_reference(sm);
                accept(&smsc, &shared.cfg, sm, &id, !failed);
                // The receipt is due after the delay, on whichever session is bound then (a
                // receipt outlives a dropped connection, as at a real SMSC).
                let due = tokio::time::Instant::now() + shared.cfg.receipt_delay;
                smsc.state.lock().expect("state").receipts.push_back((
                    due,
                    receipt(&destination, &id, !failed, reference),
                    false,
                ));
                if shared.cfg.drop_before_response == Some(count) {
                    // Taken, and the ESME never hears so.
                    smsc.state.lock().expect("state").counters.drops += 1;
                    break Ok(());
                }
                let resp = SubmitSmResp::builder()
                    .message_id(COctetString::from_str(&id).expect("an id"))
                    .build();
                let _ = out.send(Command::new(CommandStatus::EsmeRok, n, Pdu::SubmitSmResp(resp)));
                if let Some(after) = shared.cfg.drop_after
                    && count >= after
                    && !shared.dropped_once.swap(true, Ordering::SeqCst)
                {
                    smsc.state.lock().expect("state").counters.drops += 1;
                    // Let the response go out, then cut the connection without an unbind.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    break Ok(());
                }
            }
            Some(Pdu::DeliverSmResp(_)) => {
                let mut st = smsc.state.lock().expect("state");
                // Any other status: the ESME could not take it now; it stays awaiting and is
                // sent again (after `receipt_resend_after`, or on the next session).
                if cmd.status() == CommandStatus::EsmeRok
                    && let Some(a) = st.awaiting.remove(&(me, n))
                {
                    st.answered.push(a.id);
                    st.counters.receipts_answered += 1;
                }
            }
            Some(Pdu::EnquireLinkResp) | Some(Pdu::GenericNack) => {}
            Some(_) | None => {
                let _ = out.send(Command::new(CommandStatus::EsmeRinvcmdid, n, Pdu::GenericNack));
            }
        }
    };
    drop(out);
    writer.abort();
    let now = tokio::time::Instant::now();
    let mut st = smsc.state.lock().expect("state");
    let mut mine: Vec<(u64, u32)> = st.awaiting.keys().filter(|(s, _)| *s == me).copied().collect();
    // Back at the front in the order they were sent: the next session sends them first.
    mine.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    for k in mine {
        let a = st.awaiting.remove(&k).expect("present");
        st.receipts.push_front((now, a.receipt, true));
        st.counters.receipts -= 1;
    }
    result
}

/// The message id a receipt reports (its `receipted_message_id`).
fn receipted_id(r: &DeliverSm) -> String {
    r.tlvs()
        .iter()
        .find_map(|t| match t.value() {
            Some(rusmpp::tlvs::TlvValue::ReceiptedMessageId(v)) => Some(v.as_str().to_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Decodes one part and, when the message is complete, records it.
fn accept(smsc: &Smsc, cfg: &SimConfig, sm: &SubmitSm, id: &str, delivered: bool) {
    let bytes: &[u8] = sm.short_message().as_ref();
    let udhi = u8::from(sm.esm_class) & 0x40 != 0;
    let ucs2 = u8::from(sm.data_coding) == u8::from(DataCoding::Ucs2);
    let (concat, payload) = if udhi { split_udh(bytes) } else { (None, bytes) };
    let text_units: Vec<u16> = if ucs2 {
        payload
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect()
    } else {
        payload.iter().map(|&b| u16::from(b)).collect()
    };
    let destination = sm.destination_addr.as_str().to_owned();
    let source = sm.source_addr.as_str().to_owned();
    let mut st = smsc.state.lock().expect("state");
    st.counters.submits += 1;
    let done = match concat {
        None => Some((1, vec![id.to_owned()], text_units)),
        Some((reference, total, number)) => {
            let key = (destination.clone(), reference);
            let entry = st
                .partial
                .entry(key.clone())
                .or_insert_with(|| (total, HashMap::new()));
            entry.1.insert(number, (id.to_owned(), text_units));
            if entry.1.len() == usize::from(entry.0) {
                let (total, parts) = st.partial.remove(&key).expect("present");
                let mut ids = Vec::new();
                let mut units = Vec::new();
                for n in 1..=total {
                    if let Some((pid, u)) = parts.get(&n) {
                        ids.push(pid.clone());
                        units.extend_from_slice(u);
                    }
                }
                Some((total, ids, units))
            } else {
                None
            }
        }
    };
    if let Some((parts, message_ids, units)) = done {
        let text = String::from_utf16_lossy(&units);
        let r = Received {
            destination,
            source,
            text,
            parts,
            message_ids,
            delivered,
            at: Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).expect("UTC+8")),
        };
        if cfg.print {
            println!(
                "SMS to {} ({} part{}): {}",
                r.destination,
                r.parts,
                if r.parts == 1 { "" } else { "s" },
                r.text
            );
        }
        if let Some(path) = &cfg.log_file {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{}", serde_json::to_string(&r).expect("serialises"));
            }
        }
        st.received.push(r);
    }
}

/// The concatenation header (IEI 0x00, 8-bit reference, or 0x08, 16-bit) and the text after
/// the user data header.
fn split_udh(bytes: &[u8]) -> (Option<(u16, u8, u8)>, &[u8]) {
    let Some(&udhl) = bytes.first() else {
        return (None, bytes);
    };
    let end = 1 + usize::from(udhl);
    if bytes.len() < end {
        return (None, bytes);
    }
    let mut i = 1;
    let mut concat = None;
    while i + 1 < end {
        let (iei, len) = (bytes[i], usize::from(bytes[i + 1]));
        let data = &bytes[(i + 2).min(end)..(i + 2 + len).min(end)];
        match (iei, data) {
            (0x00, [r, t, n]) => concat = Some((u16::from(*r), *t, *n)),
            (0x08, [r1, r2, t, n]) => concat = Some((u16::from_be_bytes([*r1, *r2]), *t, *n)),
            _ => {}
        }
        i += 2 + len;
    }
    (concat, &bytes[end..])
}

/// The `user_message_reference` a submit carried.
fn user_message_reference(sm: &SubmitSm) -> Option<u16> {
    sm.tlvs().iter().find_map(|t| match t.value() {
        Some(rusmpp::tlvs::TlvValue::UserMessageReference(r)) => Some(u16::from(*r)),
        _ => None,
    })
}

/// A delivery receipt in the SMPP 3.4 Appendix B text form, with the receipted message id and
/// message state TLVs, and the submit's `user_message_reference` when it had one.
fn receipt(destination: &str, id: &str, delivered: bool, reference: Option<u16>) -> DeliverSm {
    let now = Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
    let stamp = now.format("%y%m%d%H%M").to_string();
    let (stat, err, dlvrd) = if delivered {
        ("DELIVRD", "000", "001")
    } else {
        ("UNDELIV", "001", "000")
    };
    let text = format!(
        "id:{id} sub:001 dlvrd:{dlvrd} submit date:{stamp} done date:{stamp} stat:{stat} err:{err} text:"
    );
    let mut tlvs = vec![
        MessageDeliveryRequestTlvValue::ReceiptedMessageId(COctetString::from_str(id).expect("an id")),
        MessageDeliveryRequestTlvValue::MessageState(if delivered {
            MessageState::Delivered
        } else {
            MessageState::Undeliverable
        }),
    ];
    if let Some(r) = reference {
        tlvs.push(MessageDeliveryRequestTlvValue::UserMessageReference(
            UserMessageReference::new(r),
        ));
    }
    DeliverSm::builder()
        .source_addr(COctetString::from_str(destination).expect("an address"))
        .destination_addr(COctetString::from_str("12333").expect("an address"))
        .esm_class(EsmClass::from(0x04))
        .short_message(OctetString::from_str(&text).expect("a receipt text"))
        .tlvs(tlvs)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_concatenation_header_is_read_in_both_forms() {
        let eight = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, 0x00, 0x41];
        assert_eq!(split_udh(&eight), (Some((0x2A, 2, 1)), &[0x00, 0x41][..]));
        let sixteen = [0x06, 0x08, 0x04, 0x01, 0x02, 0x03, 0x03, 0x00, 0x42];
        assert_eq!(split_udh(&sixteen), (Some((0x0102, 3, 3)), &[0x00, 0x42][..]));
        assert_eq!(split_udh(&[0x09]), (None, &[0x09][..]));
    }
}

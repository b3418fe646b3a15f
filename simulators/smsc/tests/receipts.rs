//! The simulator keeps a receipt until the ESME answers it: an unanswered `deliver_sm` is
//! sent again on the next session, or on the same one after `receipt_resend_after`; held
//! receipts wait; the answered ones are listed.

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{InterfaceVersion, Npi, RegisteredDelivery, Ton, UserMessageReference};
use rusmpp::{Command, CommandStatus, Pdu};
use smsc_sim::{SimConfig, Smsc};
use std::str::FromStr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Conn = Framed<TcpStream, CommandCodec>;

const WAIT: Duration = Duration::from_secs(10);

async fn sim(resend: Option<Duration>) -> Smsc {
    smsc_sim::start(SimConfig {
        receipt_delay: Duration::from_millis(10),
        receipt_resend_after: resend,
        ..Default::default()
    })
    .await
    .expect("the simulator listens")
}

/// The next PDU, within `WAIT` (the simulator sends no `enquire_link`).
async fn next(conn: &mut Conn) -> Command {
    tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("a PDU in time")
        .expect("the connection is open")
        .expect("a decodable PDU")
}

async fn bind(smsc: &Smsc) -> Conn {
    let mut conn = Framed::new(
        TcpStream::connect(smsc.addr).await.expect("connects"),
        CommandCodec::new(),
    );
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_str("insurance").expect("an id"))
        .password(COctetString::from_str("secret").expect("a password"))
        .system_type(COctetString::empty())
        .interface_version(InterfaceVersion::Smpp3_4)
        .address_range(COctetString::empty())
        .build();
    conn.send(Command::new(
        CommandStatus::EsmeRok,
        1,
        Pdu::BindTransceiver(bind),
    ))
    .await
    .expect("bind sent");
    let resp = next(&mut conn).await;
    assert!(
        matches!(resp.pdu(), Some(Pdu::BindTransceiverResp(_))),
        "{resp:?}"
    );
    assert_eq!(resp.status(), CommandStatus::EsmeRok);
    conn
}

/// Submits one short message; its SMSC message id.
async fn submit(conn: &mut Conn, to: &str) -> String {
    let sm = SubmitSm::builder()
        .source_addr_ton(Ton::Unknown)
        .source_addr_npi(Npi::Unknown)
        .source_addr(COctetString::from_str("12333").expect("an address"))
        .destination_addr(COctetString::from_str(to).expect("an address"))
        .registered_delivery(RegisteredDelivery::from(0x01))
        .short_message(OctetString::from_str("hello").expect("a text"))
        .build();
    conn.send(Command::new(CommandStatus::EsmeRok, 2, Pdu::SubmitSm(sm)))
        .await
        .expect("submit sent");
    let resp = next(conn).await;
    match resp.pdu() {
        Some(Pdu::SubmitSmResp(r)) => r.message_id().as_str().to_owned(),
        other => panic!("not a submit_sm_resp: {other:?}"),
    }
}

/// The next receipt: its sequence number and the id it reports.
async fn receipt(conn: &mut Conn) -> (u32, String) {
    let cmd = next(conn).await;
    let seq = cmd.sequence_number();
    match cmd.pdu() {
        Some(Pdu::DeliverSm(d)) => (seq, reported(d)),
        other => panic!("not a deliver_sm: {other:?}"),
    }
}

fn reported(d: &DeliverSm) -> String {
    let text = String::from_utf8_lossy(d.short_message().as_ref()).into_owned();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("id:"))
        .expect("an id")
        .to_owned()
}

async fn answer(conn: &mut Conn, seq: u32) {
    conn.send(Command::new(
        CommandStatus::EsmeRok,
        seq,
        Pdu::DeliverSmResp(DeliverSmResp::default()),
    ))
    .await
    .expect("answer sent");
}

async fn until(what: &str, check: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
async fn an_unanswered_receipt_is_sent_again_on_the_next_session_and_an_answered_one_is_not() {
    let smsc = sim(None).await;
    let mut first = bind(&smsc).await;
    let id = submit(&mut first, "13900000001").await;
    let (_, got) = receipt(&mut first).await;
    assert_eq!(got, id);
    until("the receipt awaiting its answer", || {
        smsc.unanswered_receipts() == [id.clone()]
    })
    .await;
    // The session ends without an answer: the receipt is the SMSC's again.
    drop(first);
    until("the receipt taken back", || smsc.unanswered_receipts().is_empty()).await;
    assert_eq!(smsc.counters().receipts, 0, "{:?}", smsc.counters());

    let mut second = bind(&smsc).await;
    let (seq, again) = receipt(&mut second).await;
    assert_eq!(again, id);
    assert_eq!(smsc.counters().receipts_resent, 1);
    // A non-OK answer does not take it.
    second
        .send(Command::new(
            CommandStatus::EsmeRxTAppn,
            seq,
            Pdu::DeliverSmResp(DeliverSmResp::default()),
        ))
        .await
        .expect("sent");
    answer(&mut second, seq).await;
    until("the receipt answered", || {
        smsc.answered_receipts() == [id.clone()]
    })
    .await;
    assert!(smsc.unanswered_receipts().is_empty());
    drop(second);

    // Answered: not sent on the session after.
    let mut third = bind(&smsc).await;
    let other = submit(&mut third, "13900000002").await;
    let (seq, got) = receipt(&mut third).await;
    assert_eq!(got, other, "only the new message's receipt");
    answer(&mut third, seq).await;
    until("both answered", || {
        smsc.answered_receipts() == [id.clone(), other.clone()]
    })
    .await;
    let c = smsc.counters();
    assert_eq!(
        (c.receipts, c.receipts_answered, c.receipts_resent),
        (2, 2, 1),
        "{c:?}"
    );
    smsc.stop();
}

#[tokio::test]
async fn a_receipt_unanswered_for_too_long_is_sent_again_on_the_same_session_and_held_ones_wait() {
    let smsc = sim(Some(Duration::from_millis(300))).await;
    smsc.hold_receipts(true);
    let mut conn = bind(&smsc).await;
    let id = submit(&mut conn, "13900000003").await;
    until("the receipt due", || smsc.receipts_not_sent() == 1).await;
    assert_eq!(smsc.counters().receipts, 0, "held");
    smsc.hold_receipts(false);
    let (first_seq, got) = receipt(&mut conn).await;
    assert_eq!(got, id);
    // Not answered: it comes again, under another sequence number.
    let (seq, again) = receipt(&mut conn).await;
    assert_eq!(again, id);
    assert_ne!(seq, first_seq);
    // The answer to the first copy is too late to count; the second's takes it.
    answer(&mut conn, first_seq).await;
    answer(&mut conn, seq).await;
    until("the receipt answered", || {
        smsc.answered_receipts() == [id.clone()]
    })
    .await;
    assert!(smsc.unanswered_receipts().is_empty());
    assert!(smsc.counters().receipts_resent >= 1);
    smsc.stop();
}

/// Submits one short message carrying `user_message_reference` `reference` (sequence `seq`).
async fn send_with_reference(conn: &mut Conn, to: &str, seq: u32, reference: u16) {
    let sm = SubmitSm::builder()
        .source_addr(COctetString::from_str("12333").expect("an address"))
        .destination_addr(COctetString::from_str(to).expect("an address"))
        .registered_delivery(RegisteredDelivery::from(0x01))
        .short_message(OctetString::from_str("hello").expect("a text"))
        .push_tlv(MessageSubmissionRequestTlvValue::UserMessageReference(
            UserMessageReference::new(reference),
        ))
        .build();
    conn.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::SubmitSm(sm)))
        .await
        .expect("submit sent");
}

/// The next receipt's reported id, `user_message_reference` and phone (`source_addr`).
async fn referenced_receipt(conn: &mut Conn) -> (u32, String, Option<u16>, String) {
    let cmd = next(conn).await;
    let seq = cmd.sequence_number();
    let Some(Pdu::DeliverSm(d)) = cmd.pdu() else {
        panic!("not a deliver_sm: {cmd:?}");
    };
    let reference = d.tlvs().iter().find_map(|t| match t.value() {
        Some(TlvValue::UserMessageReference(r)) => Some(u16::from(*r)),
        _ => None,
    });
    (seq, reported(d), reference, d.source_addr.as_str().to_owned())
}

#[tokio::test]
async fn a_receipt_gives_back_the_submit_s_reference_even_for_a_submit_whose_response_was_cut_off() {
    let smsc = smsc_sim::start(SimConfig {
        receipt_delay: Duration::from_millis(10),
        drop_before_response: Some(2),
        lose_submit: Some(3),
        ..Default::default()
    })
    .await
    .expect("the simulator listens");
    let mut conn = bind(&smsc).await;
    // The first: answered, and its receipt names the reference and the phone.
    send_with_reference(&mut conn, "13900000004", 2, 4711).await;
    let resp = next(&mut conn).await;
    let Some(Pdu::SubmitSmResp(r)) = resp.pdu() else {
        panic!("{resp:?}");
    };
    let id = r.message_id().as_str().to_owned();
    let (seq, got, reference, phone) = referenced_receipt(&mut conn).await;
    assert_eq!(
        (got.as_str(), reference, phone.as_str()),
        (id.as_str(), Some(4711), "13900000004")
    );
    answer(&mut conn, seq).await;

    // The second is taken, then the connection goes before its response.
    send_with_reference(&mut conn, "13900000005", 3, 4712).await;
    let end = tokio::time::timeout(WAIT, conn.next()).await.expect("in time");
    assert!(
        end.as_ref().is_none_or(|r| r.is_err()),
        "no submit_sm_resp: {end:?}"
    );
    assert_eq!(smsc.received_by("13900000005").len(), 1, "taken");
    // Its receipt comes on the next session, with the reference: the only way to know.
    let mut conn = bind(&smsc).await;
    let (seq, cut_id, reference, phone) = referenced_receipt(&mut conn).await;
    assert_eq!((reference, phone.as_str()), (Some(4712), "13900000005"));
    assert_eq!(smsc.received_by("13900000005")[0].message_ids, [cut_id]);
    answer(&mut conn, seq).await;

    // The third is lost unread with the connection: not taken, no receipt.
    send_with_reference(&mut conn, "13900000006", 4, 4713).await;
    let end = tokio::time::timeout(WAIT, conn.next()).await.expect("in time");
    assert!(
        end.as_ref().is_none_or(|r| r.is_err()),
        "no submit_sm_resp: {end:?}"
    );
    assert!(smsc.received_by("13900000006").is_empty());
    let _conn = bind(&smsc).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(smsc.receipts_not_sent(), 0);
    assert!(
        smsc.unanswered_receipts().is_empty(),
        "{:?}",
        smsc.unanswered_receipts()
    );
    assert_eq!(smsc.counters().drops, 2);
    smsc.stop();
}

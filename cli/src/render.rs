//! Everything the tool prints, as Strings, so that it is tested without a broker.

use contracts::{ErrorBody, Reply, ReplyStatus};
use messaging::parking::ParkedMessage;
use std::fmt::Write as _;
use uuid::Uuid;

/// Longest reason shown in the `parked list` table; `parked show` prints it whole.
pub const REASON_WIDTH: usize = 60;

/// The process exit code a reply stands for: 0 the service took the request (now or into its
/// backlog), 2 it did not.
pub fn exit_code(status: ReplyStatus) -> u8 {
    match status {
        ReplyStatus::Ok | ReplyStatus::Deferred => 0,
        ReplyStatus::Rejected | ReplyStatus::Suspended => 2,
    }
}

pub fn status_word(status: ReplyStatus) -> &'static str {
    match status {
        ReplyStatus::Ok => "ok",
        ReplyStatus::Rejected => "rejected",
        ReplyStatus::Deferred => "deferred",
        ReplyStatus::Suspended => "suspended",
    }
}

/// The reply as JSON on one line, as it travels on the wire.
pub fn reply_json(reply: &Reply) -> String {
    let mut s = serde_json::to_string(reply).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// `CODE  field f: message`, or `CODE  message` when no field is named.
pub fn error_line(e: &ErrorBody) -> String {
    match &e.field {
        Some(f) => format!("{}  field {f}: {}", e.code, one_line(&e.message)),
        None => format!("{}  {}", e.code, one_line(&e.message)),
    }
}

/// The reply for people: the outcome first, then whatever the reply carries.
pub fn reply_text(routing_key: &str, message_id: &Uuid, reply: &Reply) -> String {
    let mut out = String::new();
    let what = format!("{routing_key}  (message {message_id})");
    let status = status_word(reply.status);
    match (reply.status, &reply.error) {
        (ReplyStatus::Rejected, Some(e)) => {
            let _ = writeln!(out, "{status}  {}", error_line(e));
            let _ = writeln!(out, "  {what}");
        }
        (ReplyStatus::Rejected, None) => {
            let _ = writeln!(out, "{status}  (the reply gives no error)");
            let _ = writeln!(out, "  {what}");
        }
        (_, error) => {
            let _ = writeln!(out, "{status}  {what}");
            if let Some(e) = error {
                let _ = writeln!(out, "error:      {}", error_line(e));
            }
        }
    }
    if let Some(r) = &reply.receipt {
        let _ = writeln!(out, "receipt:    {}", r.id);
    }
    match reply.status {
        ReplyStatus::Deferred | ReplyStatus::Suspended => {
            let label = if reply.status == ReplyStatus::Deferred {
                "processed after the freeze ends"
            } else {
                "refused: the line or channel is frozen"
            };
            let _ = writeln!(out, "            {label}");
            match resumes_at(reply) {
                Some(at) => {
                    let _ = writeln!(out, "resumes at: {at}");
                }
                None => {
                    let _ = writeln!(out, "resumes at: (not given)");
                }
            }
        }
        ReplyStatus::Ok | ReplyStatus::Rejected => {}
    }
    if let Some(result) = &reply.result {
        let _ = writeln!(out, "result:");
        out.push_str(&indent(&pretty(result), 2));
    }
    out
}

/// When a frozen line resumes: `receipt.resumes_at`, else a `resumes_at` in the result
/// (DESIGN.md §3 names the field but the `Reply` type only has it inside the receipt).
fn resumes_at(reply: &Reply) -> Option<String> {
    reply
        .receipt
        .as_ref()
        .and_then(|r| r.resumes_at)
        .map(|t| t.to_rfc3339())
        .or_else(|| {
            reply
                .result
                .as_ref()
                .and_then(|r| r.get("resumes_at"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        })
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Indents every line of `text` by `n` spaces and ends it with a newline.
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "{pad}{l}");
        out
    })
}

/// Control characters (newlines in error chains) would break a table row.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// At most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// RFC 3339 timestamps to the second; anything else as it is.
fn short_time(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_else(|_| s.to_owned())
}

/// Why a message is parked. Messages the broker dead-lettered itself (delivery limit
/// reached) carry no `x-parked-*` headers, only `x-first-death-*`.
fn reason_of(m: &ParkedMessage) -> Option<String> {
    m.reason.clone().or_else(|| {
        m.headers
            .get("x-first-death-reason")
            .map(|r| format!("dead-lettered by the broker ({r})"))
    })
}

fn parked_from_of(m: &ParkedMessage) -> Option<String> {
    m.parked_from
        .clone()
        .or_else(|| m.headers.get("x-first-death-queue").cloned())
}

/// Renders rows as columns separated by two spaces; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn or_dash(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_owned(), one_line)
}

/// The `parked list` table. `total` is how many messages the lot holds, when known.
pub fn parked_table(parking_queue: &str, messages: &[ParkedMessage], total: Option<u32>) -> String {
    if messages.is_empty() {
        return format!("no parked messages in {parking_queue}\n");
    }
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            vec![
                or_dash(m.message_id.as_deref()),
                or_dash(m.message_type.as_deref()),
                or_dash(m.routing_key.as_deref()),
                m.parked_at.as_deref().map_or_else(|| "-".to_owned(), short_time),
                or_dash(m.code.as_deref()),
                truncate(&or_dash(reason_of(m).as_deref()), REASON_WIDTH),
            ]
        })
        .collect();
    let mut out = table(
        &["MESSAGE ID", "TYPE", "ROUTING KEY", "PARKED AT", "CODE", "REASON"],
        &rows,
    );
    let shown = messages.len();
    let total = total.map_or(shown, |t| (t as usize).max(shown));
    let _ = writeln!(out, "{shown} of {total} parked message(s) in {parking_queue}");
    out
}

/// `parked show`: the parking details, every header, and the body pretty-printed.
pub fn parked_detail(m: &ParkedMessage) -> String {
    let mut out = String::new();
    let fields = [
        ("message id", m.message_id.clone()),
        ("type", m.message_type.clone()),
        ("routing key", m.routing_key.clone()),
        ("parked from", parked_from_of(m)),
        ("parked at", m.parked_at.clone()),
        ("code", m.code.clone()),
        ("reason", reason_of(m)),
    ];
    for (label, value) in fields {
        let _ = writeln!(out, "{label:<12} {}", or_dash(value.as_deref()));
    }
    let _ = writeln!(out, "headers:");
    if m.headers.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (k, v) in &m.headers {
        let _ = writeln!(out, "  {k}: {v}");
    }
    match serde_json::from_str::<serde_json::Value>(&m.body) {
        Ok(v) => {
            let _ = writeln!(out, "body:");
            out.push_str(&indent(&pretty(&v), 2));
        }
        Err(_) if m.body.is_empty() => {
            let _ = writeln!(out, "body: (empty)");
        }
        Err(_) => {
            let _ = writeln!(out, "body (not JSON, {} bytes):", m.body.len());
            out.push_str(&indent(&m.body, 2));
        }
    }
    out
}

/// `queues depth`: one row per queue.
pub fn depth_table(rows: &[(String, u32)]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|(q, n)| vec![q.clone(), n.to_string()]).collect();
    table(&["QUEUE", "MESSAGES"], &rows)
}

/// `notifications list`: one block per message (when, state, number, template, text), and
/// for an announcement one line per phase with its progress.
pub fn notifications_text(list: &contracts::notification::NotificationList) -> String {
    let mut out = String::new();
    for a in &list.announcements {
        let _ = writeln!(
            out,
            "announcement {} {:<6} due {}  queued {}{}  delivered {}  failed {}",
            a.order,
            a.phase,
            a.due_at.format("%Y-%m-%d %H:%M"),
            a.queued,
            if a.complete {
                " (every recipient)"
            } else {
                " (sending)"
            },
            a.delivered,
            a.failed
        );
    }
    if list.notifications.is_empty() {
        out.push_str("no messages\n");
    }
    for n in &list.notifications {
        let _ = writeln!(
            out,
            "{}  {:<9}  {}  {}  {} part{}{}",
            n.created_at.format("%Y-%m-%d %H:%M:%S"),
            n.state,
            n.phone,
            n.template,
            n.parts,
            if n.parts == 1 { "" } else { "s" },
            n.reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "    {}", n.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{ErrorCode, Receipt};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn id() -> Uuid {
        Uuid::parse_str("0192f0c1-7c3a-7d2e-8f00-0123456789ab").unwrap()
    }

    const RK: &str = "medical.enrollment.enroll-person";

    #[test]
    fn ok_shows_the_command_the_message_and_the_result() {
        let r = Reply::ok(json!({"person_id": "p-1", "enrollments": []}));
        assert_eq!(
            reply_text(RK, &id(), &r),
            "ok  medical.enrollment.enroll-person  (message 0192f0c1-7c3a-7d2e-8f00-0123456789ab)\n\
             result:\n  {\n    \"enrollments\": [],\n    \"person_id\": \"p-1\"\n  }\n"
        );
        assert_eq!(exit_code(r.status), 0);
    }

    #[test]
    fn rejected_leads_with_the_code_and_the_field() {
        let r = Reply::rejected(
            ErrorBody::new(ErrorCode::InvalidIdNumber, "bad check character").with_field("id_number"),
        );
        let text = reply_text(RK, &id(), &r);
        assert_eq!(
            text.lines().next().unwrap(),
            "rejected  INVALID_ID_NUMBER  field id_number: bad check character"
        );
        assert!(text.contains(RK) && text.contains(&id().to_string()));
        assert_eq!(exit_code(r.status), 2);

        let r = Reply::rejected(ErrorBody::new(ErrorCode::NotFound, "no such person\nat all"));
        assert!(reply_text(RK, &id(), &r).starts_with("rejected  NOT_FOUND  no such person at all\n"));
    }

    #[test]
    fn deferred_shows_the_receipt() {
        let r = Reply {
            status: ReplyStatus::Deferred,
            result: None,
            error: None,
            receipt: Some(Receipt {
                id: "SJ-2025-000123".into(),
                received_at: None,
                resumes_at: Some("2025-02-01T08:00:00+08:00".parse().unwrap()),
            }),
        };
        let text = reply_text(RK, &id(), &r);
        assert!(text.starts_with("deferred  medical.enrollment.enroll-person  (message "));
        assert!(text.contains("receipt:    SJ-2025-000123\n"), "{text}");
        assert!(text.contains("resumes at: 2025-02-01T08:00:00+08:00\n"), "{text}");
        assert_eq!(exit_code(r.status), 0);
    }

    #[test]
    fn suspended_shows_when_it_resumes() {
        let r = Reply {
            status: ReplyStatus::Suspended,
            result: Some(json!({"resumes_at": "2025-02-01T08:00:00+08:00"})),
            error: None,
            receipt: None,
        };
        let text = reply_text(RK, &id(), &r);
        assert!(text.starts_with("suspended  medical.enrollment.enroll-person"));
        assert!(text.contains("resumes at: 2025-02-01T08:00:00+08:00\n"), "{text}");
        assert_eq!(exit_code(r.status), 2);

        let bare = Reply { result: None, ..r };
        assert!(reply_text(RK, &id(), &bare).contains("resumes at: (not given)"));
    }

    #[test]
    fn json_output_is_the_wire_reply_on_one_line() {
        let r = Reply::rejected(ErrorBody::new(ErrorCode::Conflict, "already enrolled"));
        assert_eq!(
            reply_json(&r),
            "{\"status\":\"rejected\",\"error\":{\"code\":\"CONFLICT\",\"message\":\"already enrolled\"}}\n"
        );
    }

    fn parked(id: &str, reason: &str) -> ParkedMessage {
        let mut headers = BTreeMap::new();
        headers.insert("x-parked-reason".to_owned(), reason.to_owned());
        headers.insert("ce-id".to_owned(), id.to_owned());
        ParkedMessage {
            message_id: Some(id.to_owned()),
            message_type: Some("enrollment.enroll-person.v1".into()),
            routing_key: Some(RK.into()),
            parked_from: Some("enrollment.medical.commands".into()),
            reason: Some(reason.to_owned()),
            code: Some("MALFORMED_MESSAGE".into()),
            parked_at: Some("2025-01-05T03:04:05.123456789+00:00".into()),
            headers,
            body: "{\"a\":1}".into(),
        }
    }

    #[test]
    fn parked_table_aligns_columns_and_truncates_reasons() {
        let long = "x".repeat(100);
        let text = parked_table(
            "q.parking",
            &[parked("m-1", "short"), parked("m-22", &long)],
            Some(5),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("MESSAGE ID  TYPE"), "{text}");
        assert!(
            lines[1].starts_with("m-1         enrollment.enroll-person.v1  "),
            "{text}"
        );
        assert!(lines[1].contains("2025-01-05T03:04:05+00:00  MALFORMED_MESSAGE  short"));
        let cut = lines[2].rsplit("  ").next().unwrap();
        assert_eq!(cut.chars().count(), REASON_WIDTH);
        assert!(cut.ends_with('…'));
        assert_eq!(lines[3], "2 of 5 parked message(s) in q.parking");
        assert_eq!(
            parked_table("q.parking", &[], Some(0)),
            "no parked messages in q.parking\n"
        );
    }

    #[test]
    fn broker_dead_lettered_messages_show_why() {
        let mut m = parked("m-1", "");
        m.reason = None;
        m.parked_from = None;
        m.headers.clear();
        m.headers
            .insert("x-first-death-reason".into(), "delivery_limit".into());
        m.headers
            .insert("x-first-death-queue".into(), "enrollment.medical.commands".into());
        let text = parked_detail(&m);
        assert!(
            text.contains("reason       dead-lettered by the broker (delivery_limit)"),
            "{text}"
        );
        assert!(
            text.contains("parked from  enrollment.medical.commands"),
            "{text}"
        );
    }

    #[test]
    fn parked_detail_prints_every_header_and_the_pretty_body() {
        let text = parked_detail(&parked("m-1", "body is not JSON"));
        assert!(text.starts_with("message id   m-1\n"), "{text}");
        assert!(text.contains("headers:\n  ce-id: m-1\n  x-parked-reason: body is not JSON\n"));
        assert!(text.ends_with("body:\n  {\n    \"a\": 1\n  }\n"), "{text}");

        let mut m = parked("m-2", "r");
        m.body = "{not json".into();
        assert!(parked_detail(&m).ends_with("body (not JSON, 9 bytes):\n  {not json\n"));
    }

    #[test]
    fn depth_table_lists_each_queue() {
        assert_eq!(
            depth_table(&[("a.parking".into(), 3), ("longer.queue".into(), 12)]),
            "QUEUE         MESSAGES\na.parking     3\nlonger.queue  12\n"
        );
    }
}

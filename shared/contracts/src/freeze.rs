//! Freeze orders (停机切换, DESIGN.md §5, DOMAIN.md §8): what an operator sends to
//! `insurance.control`, what a timetable file holds, and how an order in force is judged
//! against one request. Pure data and pure functions: the services, the command-line client
//! and the drills share them.
//!
//! An order's scope is lines × services × channels × operations, each "all" when empty.
//! Operations are command names or named groups ([`group_members`]). Queries (a command that
//! changes nothing) stay answered unless an order names them, or their group, explicitly.
//! Times are instants with an offset; timetables are written in China Standard Time.

use crate::line::{Channel, Line};
use chrono::{DateTime, FixedOffset, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// China Standard Time, the offset every agency notice is written in.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// What a frozen line does with requests in scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeMode {
    /// 收件: requests are stored in the backlog and answered `deferred` with a receipt;
    /// processed at thaw as of their arrival.
    IntakeOnly,
    /// Requests are refused with `suspended` and when the line resumes; nothing is stored.
    Suspended,
}

impl FreezeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FreezeMode::IntakeOnly => "intake-only",
            FreezeMode::Suspended => "suspended",
        }
    }

    /// Suspended is stricter than intake-only: where two orders overlap, it wins.
    fn strictness(self) -> u8 {
        match self {
            FreezeMode::IntakeOnly => 1,
            FreezeMode::Suspended => 2,
        }
    }
}

/// What an order does to deadlines (payment, declaration, filing) of its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DeadlineEffect {
    /// A deadline inside the freeze moves by the freeze's length (顺延); an order without an
    /// end extends it until the thaw.
    #[default]
    Extend,
    /// A period moves to the dates the order gives (Hangzhou: July 2020's declaration
    /// window becomes 08-01 → 08-25).
    MoveTo {
        /// The period moved, `YYYY-MM`.
        period: String,
        opens: DateTime<FixedOffset>,
        closes: DateTime<FixedOffset>,
    },
    /// Deadlines are not touched.
    None,
}

/// Where an order applies; every list empty means "all".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FreezeScope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
    /// Command names (`enroll-person`) or groups (`registration`, `payment`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// Payer kinds (`employer`, `flexible`, `retiree`, `resident`) where collection needs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payer_kinds: Vec<String>,
}

/// One freeze order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeOrder {
    /// Chosen by the operator; an order sent again with the same id and body changes nothing.
    pub id: String,
    #[serde(default)]
    pub scope: FreezeScope,
    pub mode: FreezeMode,
    pub starts_at: DateTime<FixedOffset>,
    /// Absent: "to be announced" (另行通知); the order holds until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<FixedOffset>>,
    pub reason: String,
    /// Shown to the public, in Chinese, with the line's hotline.
    #[serde(default)]
    pub announcement: String,
    #[serde(default)]
    pub deadlines: DeadlineEffect,
    /// A channel that stays open for the requests this order refuses (channel routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<Channel>,
}

/// A timetable file: the orders of one cutover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timetable {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub orders: Vec<FreezeOrder>,
}

/// Why a timetable file is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimetableError {
    #[error("timetable '{0}' has no orders")]
    Empty(String),
    #[error("timetable '{0}': order id '{1}' appears twice")]
    DuplicateId(String, String),
    #[error("timetable '{name}': {source}")]
    Order {
        name: String,
        #[source]
        source: OrderError,
    },
}

impl Timetable {
    /// Every order valid, ids unique.
    pub fn validate(&self) -> Result<(), TimetableError> {
        if self.orders.is_empty() {
            return Err(TimetableError::Empty(self.name.clone()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for o in &self.orders {
            o.validate().map_err(|source| TimetableError::Order {
                name: self.name.clone(),
                source,
            })?;
            if !seen.insert(o.id.as_str()) {
                return Err(TimetableError::DuplicateId(self.name.clone(), o.id.clone()));
            }
        }
        Ok(())
    }

    /// Reads a timetable file's text (YAML; times with their offset, `+08:00` in the
    /// agencies' notices) and checks it.
    pub fn from_yaml(text: &str) -> Result<Timetable, String> {
        let t: Timetable = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("not a timetable: {e}"))?;
        t.validate().map_err(|e| e.to_string())?;
        Ok(t)
    }

    /// The orders in the order they start (ties by id), as a drill replays them.
    pub fn by_start(&self) -> Vec<&FreezeOrder> {
        let mut v: Vec<&FreezeOrder> = self.orders.iter().collect();
        v.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then_with(|| a.id.cmp(&b.id)));
        v
    }
}

/// Why an order is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order id is empty")]
    EmptyId,
    #[error("order {0}: ends_at is not after starts_at")]
    EndsBeforeStart(String),
    #[error("order {0}: unknown operation or group '{1}'")]
    UnknownOperation(String, String),
    #[error("order {0}: reason is empty")]
    EmptyReason(String),
    #[error("order {0}: redirect_to names a channel the order itself closes")]
    RedirectIntoScope(String),
    #[error("order {0}: a moved period must close after it opens")]
    MovedPeriod(String),
}

/// Named groups of operations, per service.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "registration",
        &[
            "enroll-person",
            "register-employer",
            "add-staff",
            "remove-staff",
            "change-contact",
            "suspend",
            "terminate",
            "transfer-in",
            "transfer-out",
        ],
    ),
    (
        "assessment",
        &["declare-wages", "assess-month", "set-policy", "detect-arrears"],
    ),
    (
        "payment",
        &["record-payment", "start-batch-debit", "record-debit-results"],
    ),
    (
        "settlement",
        &[
            "register-visit",
            "cancel-visit",
            "admit",
            "discharge",
            "upload-fees",
            "cancel-fees",
            "pre-settle",
            "settle",
            "cancel-settlement",
            "reverse",
        ],
    ),
    (
        "card",
        &[
            "apply-card",
            "review-photo",
            "record-bank-account",
            "record-production",
            "record-shipment",
            "record-arrival",
            "report-data-error",
            "roll-back",
            "pick-up-card",
            "activate-card",
            "issue-instantly",
            "report-loss",
            "lift-loss",
            "replace-card",
            "renew-card",
        ],
    ),
    // Social-line benefits (issue 10 §5): the monthly payment run and the bank's results are
    // their own group, so that a timetable can freeze the rest of the social business and
    // leave pensions, unemployment and work-injury benefits paid (Wuhan 2021).
    (
        "benefit-payment",
        &["run-benefit-payments", "record-benefit-payments"],
    ),
    // Filings 备案 (issue 10 §1): their own group, so that a timetable can name them.
    (
        "filing",
        &[
            "file-cross-region",
            "file-chronic-disease",
            "file-special-drug",
            "review-filing",
            "revoke-filing",
        ],
    ),
    (
        "benefit-approval",
        &["apply-retirement", "review-retirement", "grant-benefit"],
    ),
    (
        "query",
        &[
            "retirement-status",
            "batch-status",
            "filing-status",
            "person-info",
            "eligibility",
            "account-balance",
            "account-statement",
            "reconcile-totals",
            "reconcile-details",
            "get-card-status",
            "get-person",
            "contribution-history",
            "employer-statement",
            "get-policy",
            "list-arrears",
        ],
    ),
];

/// The operations of a group, or `None` when `name` is not a group.
pub fn group_members(name: &str) -> Option<&'static [&'static str]> {
    GROUPS.iter().find(|(g, _)| *g == name).map(|(_, m)| *m)
}

/// Queries are answered during a freeze unless an order names them.
pub fn is_query(operation: &str) -> bool {
    group_members("query").is_some_and(|q| q.contains(&operation))
}

fn known_operation(name: &str) -> bool {
    group_members(name).is_some() || GROUPS.iter().any(|(_, m)| m.contains(&name))
}

impl FreezeOrder {
    pub fn validate(&self) -> Result<(), OrderError> {
        if self.id.trim().is_empty() {
            return Err(OrderError::EmptyId);
        }
        if self.reason.trim().is_empty() {
            return Err(OrderError::EmptyReason(self.id.clone()));
        }
        if let Some(end) = self.ends_at
            && end <= self.starts_at
        {
            return Err(OrderError::EndsBeforeStart(self.id.clone()));
        }
        if let Some(op) = self.scope.operations.iter().find(|o| !known_operation(o)) {
            return Err(OrderError::UnknownOperation(self.id.clone(), op.clone()));
        }
        if let Some(r) = self.redirect_to
            && (self.scope.channels.is_empty() || self.scope.channels.contains(&r))
        {
            return Err(OrderError::RedirectIntoScope(self.id.clone()));
        }
        if let DeadlineEffect::MoveTo { opens, closes, .. } = &self.deadlines
            && closes <= opens
        {
            return Err(OrderError::MovedPeriod(self.id.clone()));
        }
        Ok(())
    }

    /// In force at `now`: started, not yet ended.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && self.ends_at.is_none_or(|e| now < e)
    }

    /// Whether the order covers `line` of `service` at all (any channel, any operation).
    pub fn covers_line(&self, line: Line, service: &str) -> bool {
        (self.scope.lines.is_empty() || self.scope.lines.contains(&line))
            && (self.scope.services.is_empty() || self.scope.services.iter().any(|s| s == service))
    }

    /// Whether the order covers one request.
    pub fn covers(&self, req: &Request<'_>) -> bool {
        if !self.covers_line(req.line, req.service) {
            return false;
        }
        let channel_ok =
            self.scope.channels.is_empty() || req.channel.is_some_and(|c| self.scope.channels.contains(&c));
        if !channel_ok {
            return false;
        }
        let named = |op: &str| {
            self.scope
                .operations
                .iter()
                .any(|o| o == op || group_members(o).is_some_and(|m| m.contains(&op)))
        };
        let op_ok = if self.scope.operations.is_empty() {
            !is_query(req.operation)
        } else {
            named(req.operation)
        };
        if !op_ok {
            return false;
        }
        self.scope.payer_kinds.is_empty()
            || req
                .payer_kind
                .is_some_and(|k| self.scope.payer_kinds.iter().any(|p| p == k))
    }

    /// Whether the order stops the consumption of `line`'s events by `service`: an order
    /// over the whole line (every channel, every operation, every payer) pauses its events;
    /// an order limited to some channels or operations leaves the events flowing.
    pub fn pauses_events(&self, line: Line, service: &str) -> bool {
        self.covers_line(line, service)
            && self.scope.channels.is_empty()
            && self.scope.operations.is_empty()
            && self.scope.payer_kinds.is_empty()
    }

    /// Whether the order closes the data-sharing channel of `line` (external subscribers):
    /// it names the channel, or it stops the whole line (no service, channel, operation or
    /// payer list). The feed carries every service's events of the line, so an order over
    /// some services (Wuhan's settlement stop, its social business at enrollment and
    /// collection) or over some operations or payers of every channel (Wuhan's resident
    /// registration) leaves the line's feed to the tax authority open: Wuhan's timetable never
    /// names data sharing, Hangzhou's phase 2 does.
    pub fn holds_data_sharing(&self, line: Line) -> bool {
        (self.scope.lines.is_empty() || self.scope.lines.contains(&line))
            && (self.scope.channels.contains(&Channel::DataSharing)
                || (self.scope.services.is_empty()
                    && self.scope.channels.is_empty()
                    && self.scope.operations.is_empty()
                    && self.scope.payer_kinds.is_empty()))
    }
}

/// One request as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub line: Line,
    pub service: &'a str,
    pub channel: Option<Channel>,
    pub operation: &'a str,
    pub payer_kind: Option<&'a str>,
}

/// What the gate does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Open,
    /// Held in the backlog; `resumes_at` is the latest planned end of the orders that
    /// hold it (`None`: to be announced).
    Defer {
        order: String,
        resumes_at: Option<DateTime<Utc>>,
    },
    Refuse {
        order: String,
        resumes_at: Option<DateTime<Utc>>,
        redirect_to: Option<Channel>,
        announcement: String,
    },
}

/// The latest end of `orders` (`None` if any is open-ended).
fn latest_end<'a>(orders: impl Iterator<Item = &'a FreezeOrder>) -> Option<DateTime<Utc>> {
    let mut latest: Option<DateTime<Utc>> = None;
    for o in orders {
        let end = o.ends_at?.with_timezone(&Utc);
        latest = Some(latest.map_or(end, |l| l.max(end)));
    }
    latest
}

/// Judges `req` at `now` against `orders` (lifted and cancelled orders already left out).
/// The strictest order in force wins; among equals, the one that started last. A refused
/// request that an order redirects names the channel to use.
pub fn decide(orders: &[FreezeOrder], now: DateTime<Utc>, req: &Request<'_>) -> Decision {
    let covering: Vec<&FreezeOrder> = orders
        .iter()
        .filter(|o| o.in_force(now) && o.covers(req))
        .collect();
    let Some(top) = covering
        .iter()
        .max_by_key(|o| (o.mode.strictness(), o.starts_at))
        .copied()
    else {
        return Decision::Open;
    };
    let same_mode = covering.iter().filter(|o| o.mode == top.mode).copied();
    let resumes_at = latest_end(same_mode);
    match top.mode {
        FreezeMode::IntakeOnly => Decision::Defer {
            order: top.id.clone(),
            resumes_at,
        },
        FreezeMode::Suspended => Decision::Refuse {
            order: top.id.clone(),
            resumes_at,
            redirect_to: top.redirect_to,
            announcement: top.announcement.clone(),
        },
    }
}

/// The freeze windows of `line` (for `service`, or any service when `None`) that extend
/// deadlines, as half-open intervals `[start, end)`; an open-ended order extends to `now`
/// (it runs until the thaw, which has not come yet).
pub fn deadline_windows(
    orders: &[FreezeOrder],
    line: Line,
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut w: Vec<(DateTime<Utc>, DateTime<Utc>)> = orders
        .iter()
        .filter(|o| o.deadlines == DeadlineEffect::Extend)
        .filter(|o| o.scope.lines.is_empty() || o.scope.lines.contains(&line))
        .filter(|o| o.starts_at.with_timezone(&Utc) <= now)
        .map(|o| {
            let start = o.starts_at.with_timezone(&Utc);
            (start, o.ends_at.map_or(now, |e| e.with_timezone(&Utc)))
        })
        .collect();
    w.sort();
    // Overlapping windows count once.
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (s, e) in w {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Where an order moves `period` (`YYYY-MM`) of `line`: the window `[opens, closes)` of the
/// order that starts last (Hangzhou: July 2020's declaration becomes 08-01 → 08-25). Known
/// as soon as the order is, before it starts: the move is announced in advance.
pub fn moved_period(
    orders: &[FreezeOrder],
    line: Line,
    period: &str,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    orders
        .iter()
        .filter(|o| o.scope.lines.is_empty() || o.scope.lines.contains(&line))
        .filter_map(|o| match &o.deadlines {
            DeadlineEffect::MoveTo {
                period: p,
                opens,
                closes,
            } if p == period => Some((o.starts_at, opens.with_timezone(&Utc), closes.with_timezone(&Utc))),
            _ => None,
        })
        .max_by_key(|(start, _, _)| *start)
        .map(|(_, o, c)| (o, c))
}

/// A deadline moved by the freezes of its line: every window that starts at or before the
/// (already moved) deadline pushes it by the window's length (顺延).
pub fn extend_deadline(deadline: DateTime<Utc>, windows: &[(DateTime<Utc>, DateTime<Utc>)]) -> DateTime<Utc> {
    let mut d = deadline;
    for (s, e) in windows {
        if *s <= d {
            d += *e - *s;
        }
    }
    d
}

/// What `insurance.control` carries (routing key `all.freeze.<action>` or
/// `<service>.freeze.<action>`), type `control.freeze.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ControlMessage {
    /// A new order, or the same order again (idempotent by id and body).
    Order { order: Box<FreezeOrder> },
    /// Thaw now: the order ends at once.
    Lift { id: String },
    /// A new planned end (also gives an open-ended order its end).
    Extend {
        id: String,
        until: DateTime<FixedOffset>,
    },
    /// The order never applies (or stops applying) and moves no deadline.
    Cancel { id: String },
    /// Every service answers with its [`FreezeStatus`] on `reply_to`.
    Status {},
    /// The service that holds this receipt answers with its [`ReceiptRecord`]; the others
    /// answer `NOT_FOUND`.
    Receipt { id: String },
}

impl ControlMessage {
    pub fn action(&self) -> &'static str {
        match self {
            ControlMessage::Order { .. } => "order",
            ControlMessage::Lift { .. } => "lift",
            ControlMessage::Extend { .. } => "extend",
            ControlMessage::Cancel { .. } => "cancel",
            ControlMessage::Status {} => "status",
            ControlMessage::Receipt { .. } => "receipt",
        }
    }
}

/// Where an order stands in one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OrderState {
    Scheduled,
    InForce,
    Ended,
    Lifted,
    Cancelled,
}

/// An order as a service holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeldOrder {
    pub order: FreezeOrder,
    pub state: OrderState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<DateTime<FixedOffset>>,
}

/// One line of a service, as `freeze status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineStatus {
    pub line: Line,
    /// `open`, `intake-only`, `suspended` or `draining`; `partial` when orders in force
    /// cover only some channels or operations.
    pub mode: String,
    pub events_paused: bool,
    /// External subscribers (the tax authority) receive none of the line's events now: an
    /// order in force closes the line's data-sharing channel.
    #[serde(default)]
    pub data_sharing_held: bool,
    pub backlog: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_held: Option<DateTime<FixedOffset>>,
    pub orders_in_force: Vec<String>,
}

/// A service's answer to `freeze status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FreezeStatus {
    pub service: String,
    /// The service's clock (a drill clock runs ahead of the wall clock).
    pub now: DateTime<FixedOffset>,
    pub lines: Vec<LineStatus>,
    pub orders: Vec<HeldOrder>,
}

/// A receipt and what became of it (`insurancectl receipt show`), the answer to
/// [`ControlMessage::Receipt`] (schema `control.receipt.result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiptRecord {
    pub receipt: crate::Receipt,
    pub service: String,
    pub line: Line,
    /// The order that held the request (`thaw` when it arrived while the line drained).
    pub order: String,
    pub message_id: uuid::Uuid,
    /// The routing key the request came with (`medical.enrollment.enroll-person`).
    pub routing_key: String,
    /// `held` (waiting for the thaw), `processed` or `failed` (processed, and the final reply
    /// is a rejection or an internal error).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime<FixedOffset>>,
    /// The final reply, once processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<crate::Reply>,
}

/// Event `freeze-started` (type `freeze.freeze-started.v1`), once per service and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FreezeStarted {
    pub order: String,
    pub service: String,
    pub line: Line,
    pub mode: FreezeMode,
    pub starts_at: DateTime<FixedOffset>,
    pub ends_at: Option<DateTime<FixedOffset>>,
    pub reason: String,
    #[serde(default)]
    pub announcement: String,
}

/// Event `freeze-ended` (type `freeze.freeze-ended.v1`), once per service and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FreezeEnded {
    pub order: String,
    pub service: String,
    pub line: Line,
    /// `planned` (its end passed), `lifted` or `cancelled`.
    pub how: String,
    pub ended_at: DateTime<FixedOffset>,
}

/// Event `deferred-request-processed` (type `freeze.deferred-request-processed.v1`): a
/// request held during a freeze was processed at thaw; notification tells the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeferredRequestProcessed {
    pub receipt: crate::Receipt,
    pub service: String,
    pub line: Line,
    /// The command's name (`enroll-person`).
    pub command: String,
    pub message_id: uuid::Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub processed_at: DateTime<FixedOffset>,
    /// The final reply, as the sender would have got it without the freeze.
    pub reply: crate::Reply,
    /// Whom the request concerned: the command's ordering key (`person:<id_number>`,
    /// `employer:<credit_code>`), so that notification can tell them the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const WUHAN: &str = include_str!("../../../cutovers/wuhan-2021.yaml");
    const HANGZHOU: &str = include_str!("../../../cutovers/hangzhou-2020.yaml");

    fn utc(s: &str) -> DateTime<Utc> {
        t(s).with_timezone(&Utc)
    }

    fn request<'a>(
        line: Line,
        service: &'a str,
        channel: Channel,
        op: &'a str,
        payer: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            line,
            service,
            channel: Some(channel),
            operation: op,
            payer_kind: payer,
        }
    }

    fn refused_until(d: &Decision) -> Option<Option<DateTime<Utc>>> {
        match d {
            Decision::Refuse { resumes_at, .. } => Some(*resumes_at),
            _ => None,
        }
    }

    #[test]
    fn the_wuhan_timetable_says_what_the_notices_say() {
        let t = Timetable::from_yaml(WUHAN).expect("wuhan-2021.yaml loads");
        assert_eq!(t.name, "wuhan-2021");
        assert_eq!(t.orders.len(), 7);
        let by_id = |id: &str| t.orders.iter().find(|o| o.id == id).expect(id);
        // 12-14 24:00 CST is 12-14 16:00 UTC; tax and bank stop with no end (另行通知).
        let tax = by_id("wuhan-2021-tax-bank-collection");
        assert_eq!(tax.starts_at.with_timezone(&Utc), utc("2021-12-14T16:00:00Z"));
        assert_eq!(tax.ends_at, None);
        let settle = by_id("wuhan-2021-medical-settlement");
        assert_eq!(settle.starts_at, t_cst("2021-12-22T18:00:00"));
        assert_eq!(settle.ends_at, Some(t_cst("2021-12-31T23:00:00")));
        assert!(t.orders.iter().all(|o| o.deadlines == DeadlineEffect::Extend));
        assert!(t.orders.iter().all(|o| o.announcement.contains("027-")));
        // No order names data sharing or stops every service of a line: the feed to the tax
        // authority stays open on both lines throughout.
        for line in [Line::Medical, Line::Social] {
            assert!(t.orders.iter().all(|o| !o.holds_data_sharing(line)), "{line}");
        }

        let orders = &t.orders;
        let m = Line::Medical;
        let s = Line::Social;
        // Resident medical registration: open at 17:29, suspended at 17:30 on every channel.
        let resident = |ch| request(m, "enrollment", ch, "enroll-person", Some("resident"));
        assert_eq!(
            decide(orders, utc("2021-12-14T09:29:59Z"), &resident(Channel::Counter)),
            Decision::Open
        );
        for ch in [Channel::Counter, Channel::Online, Channel::Mobile] {
            let d = decide(orders, utc("2021-12-14T09:30:00Z"), &resident(ch));
            assert_eq!(refused_until(&d), Some(None), "{ch:?}: {d:?}");
        }
        // Employee medical goes a day later, at 12-15 17:30.
        let employee = request(
            m,
            "enrollment",
            Channel::Counter,
            "enroll-person",
            Some("employer"),
        );
        assert_eq!(
            decide(orders, utc("2021-12-15T09:29:00Z"), &employee),
            Decision::Open
        );
        assert!(refused_until(&decide(orders, utc("2021-12-15T09:30:00Z"), &employee)).is_some());
        // Social: arrears back-payment stops 12-14 17:30, the rest of the business 12-15 17:30.
        let pay = request(s, "collection", Channel::Counter, "record-payment", None);
        assert!(refused_until(&decide(orders, utc("2021-12-14T09:30:00Z"), &pay)).is_some());
        let pension = request(
            s,
            "enrollment",
            Channel::Counter,
            "enroll-person",
            Some("flexible"),
        );
        assert_eq!(
            decide(orders, utc("2021-12-15T09:00:00Z"), &pension),
            Decision::Open
        );
        assert!(refused_until(&decide(orders, utc("2021-12-15T09:30:00Z"), &pension)).is_some());
        // Pensions keep being paid and card loss reports are taken at banks.
        let pensions = request(s, "benefits", Channel::Bank, "pay-pension", None);
        assert_eq!(
            decide(orders, utc("2021-12-25T02:00:00Z"), &pensions),
            Decision::Open
        );
        let loss = Request {
            line: Line::Common,
            service: "card-issuance",
            channel: Some(Channel::Bank),
            operation: "report-loss",
            payer_kind: None,
        };
        assert_eq!(decide(orders, utc("2021-12-25T02:00:00Z"), &loss), Decision::Open);
        // Settlement: stopped 12-22 18:00, resumes 12-31 23:00 CST (15:00 UTC).
        let settle_req = request(m, "benefits", Channel::Institution, "settle", None);
        assert_eq!(
            decide(orders, utc("2021-12-22T09:59:00Z"), &settle_req),
            Decision::Open
        );
        assert_eq!(
            refused_until(&decide(orders, utc("2021-12-22T10:00:00Z"), &settle_req)),
            Some(Some(utc("2021-12-31T15:00:00Z")))
        );
        assert_eq!(
            decide(orders, utc("2021-12-31T15:00:00Z"), &settle_req),
            Decision::Open
        );
        // The medical line's events stop at collection only with a whole-line order: none is.
        assert!(!orders.iter().any(|o| o.pauses_events(m, "collection")));
        assert!(orders.iter().any(|o| o.pauses_events(s, "collection")));
    }

    fn t_cst(local: &str) -> DateTime<FixedOffset> {
        t(&format!("{local}+08:00"))
    }

    #[test]
    fn the_hangzhou_timetable_says_what_the_notices_say() {
        let t = Timetable::from_yaml(HANGZHOU).expect("hangzhou-2020.yaml loads");
        assert_eq!(t.name, "hangzhou-2020");
        let orders = &t.orders;
        let s = Line::Social;
        let m = Line::Medical;
        let enroll = |ch| request(s, "enrollment", ch, "enroll-person", Some("flexible"));
        // Phase 1 (7-17 12:00 → 7-24 18:00): online, mobile, kiosk sent to the counter.
        let p1 = utc("2020-07-17T04:00:00Z");
        assert_eq!(
            decide(orders, utc("2020-07-17T03:59:59Z"), &enroll(Channel::Online)),
            Decision::Open
        );
        for ch in [Channel::Online, Channel::Mobile, Channel::Kiosk] {
            match decide(orders, p1, &enroll(ch)) {
                Decision::Refuse {
                    redirect_to,
                    resumes_at,
                    ..
                } => {
                    assert_eq!(redirect_to, Some(Channel::Counter));
                    assert_eq!(resumes_at, Some(utc("2020-07-24T10:00:00Z")));
                }
                d => panic!("{ch:?} in phase 1: {d:?}"),
            }
        }
        assert_eq!(decide(orders, p1, &enroll(Channel::Counter)), Decision::Open);
        // Phase 2 (7-24 18:00 → 8-12 24:00): the counter takes paperwork in, resuming 8-13 00:00.
        let p2 = utc("2020-07-24T10:00:00Z");
        assert_eq!(
            decide(orders, p2, &enroll(Channel::Counter)),
            Decision::Defer {
                order: "hangzhou-2020-phase-2-counter".into(),
                resumes_at: Some(utc("2020-08-12T16:00:00Z")),
            }
        );
        assert_eq!(
            refused_until(&decide(orders, p2, &enroll(Channel::Online))),
            Some(Some(utc("2020-08-12T16:00:00Z")))
        );
        // Queries at the counter stay answered; settlement at institutions never stops.
        let query = request(s, "enrollment", Channel::Counter, "get-person", None);
        assert_eq!(decide(orders, p2, &query), Decision::Open);
        let settle = request(m, "benefits", Channel::Institution, "settle", None);
        for at in [p1, p2, utc("2020-08-05T02:00:00Z")] {
            assert_eq!(decide(orders, at, &settle), Decision::Open);
        }
        // Data sharing is held in phase 2 only.
        let sharing: Vec<&str> = orders
            .iter()
            .filter(|o| o.holds_data_sharing(s))
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(sharing, ["hangzhou-2020-phase-2"]);
        // Tax collection: stopped 7-24 18:00 → 7-26 24:00, open again on 7-27.
        let tax = request(s, "collection", Channel::Tax, "record-payment", None);
        assert_eq!(
            refused_until(&decide(orders, p2, &tax)),
            Some(Some(utc("2020-07-26T16:00:00Z")))
        );
        assert_eq!(decide(orders, utc("2020-07-26T16:00:00Z"), &tax), Decision::Open);
        // A deadline inside the tax stop moves by its 54 hours; July's declaration moves to
        // 8-1 → 8-25 (closing at 8-26 00:00 CST).
        let windows = deadline_windows(orders, s, utc("2020-08-20T00:00:00Z"));
        assert_eq!(windows, vec![(p2, utc("2020-07-26T16:00:00Z"))]);
        assert_eq!(
            extend_deadline(utc("2020-07-25T15:59:59Z"), &windows),
            utc("2020-07-25T15:59:59Z") + chrono::Duration::hours(54)
        );
        assert_eq!(
            moved_period(orders, s, "2020-07"),
            Some((utc("2020-07-31T16:00:00Z"), utc("2020-08-25T16:00:00Z")))
        );
        assert_eq!(moved_period(orders, s, "2020-08"), None);
    }

    #[test]
    fn a_bad_timetable_is_refused_with_the_reason() {
        let err = Timetable::from_yaml("name: x\norders: []\n").unwrap_err();
        assert!(err.contains("no orders"), "{err}");
        let dup = HANGZHOU.replace("hangzhou-2020-tax-stop", "hangzhou-2020-phase-1");
        let err = Timetable::from_yaml(&dup).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
        let typo = WUHAN.replace("operations: [record-payment]", "operations: [record-paymnet]");
        let err = Timetable::from_yaml(&typo).unwrap_err();
        assert!(err.contains("record-paymnet"), "{err}");
        let err = Timetable::from_yaml("name: x\norders:\n  - id: a\n    mode: frozen\n").unwrap_err();
        assert!(err.contains("not a timetable"), "{err}");
    }

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("a time")
    }

    fn order(id: &str, mode: FreezeMode, start: &str, end: Option<&str>) -> FreezeOrder {
        FreezeOrder {
            id: id.into(),
            scope: FreezeScope::default(),
            mode,
            starts_at: t(start),
            ends_at: end.map(t),
            reason: "cutover".into(),
            announcement: "系统切换，请拨打12393".into(),
            deadlines: DeadlineEffect::Extend,
            redirect_to: None,
        }
    }

    fn req<'a>(line: Line, channel: Option<Channel>, op: &'a str) -> Request<'a> {
        Request {
            line,
            service: "enrollment",
            channel,
            operation: op,
            payer_kind: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        t(s).with_timezone(&Utc)
    }

    #[test]
    fn an_order_applies_from_its_start_until_its_end_in_china_standard_time() {
        let mut o = order(
            "wh-med",
            FreezeMode::Suspended,
            "2021-12-15T17:30:00+08:00",
            Some("2021-12-31T23:00:00+08:00"),
        );
        o.scope.lines = vec![Line::Medical];
        let orders = vec![o];
        let r = req(Line::Medical, Some(Channel::Counter), "enroll-person");
        // 17:29 CST is 09:29 UTC: not yet.
        assert_eq!(decide(&orders, at("2021-12-15T09:29:59Z"), &r), Decision::Open);
        assert!(matches!(
            decide(&orders, at("2021-12-15T09:30:00Z"), &r),
            Decision::Refuse { resumes_at: Some(x), .. } if x == at("2021-12-31T15:00:00Z")
        ));
        assert_eq!(decide(&orders, at("2021-12-31T15:00:00Z"), &r), Decision::Open);
        let social = req(Line::Social, Some(Channel::Counter), "enroll-person");
        assert_eq!(
            decide(&orders, at("2021-12-20T00:00:00Z"), &social),
            Decision::Open
        );
    }

    #[test]
    fn channels_operations_and_groups_narrow_the_scope_and_queries_stay_open() {
        // Hangzhou phase 1: online, mobile and kiosk suspended; counters work normally.
        let mut p1 = order(
            "hz-1",
            FreezeMode::Suspended,
            "2020-07-17T12:00:00+08:00",
            Some("2020-07-24T18:00:00+08:00"),
        );
        p1.scope.channels = vec![Channel::Online, Channel::Mobile, Channel::Kiosk];
        p1.redirect_to = Some(Channel::Counter);
        p1.validate().expect("valid");
        let orders = vec![p1];
        let now = at("2020-07-20T02:00:00Z");
        let online = req(Line::Social, Some(Channel::Online), "enroll-person");
        assert!(matches!(
            decide(&orders, now, &online),
            Decision::Refuse {
                redirect_to: Some(Channel::Counter),
                ..
            }
        ));
        let counter = req(Line::Social, Some(Channel::Counter), "enroll-person");
        assert_eq!(decide(&orders, now, &counter), Decision::Open);
        // A request without a channel is not in a channel-limited order.
        assert_eq!(
            decide(&orders, now, &req(Line::Social, None, "enroll-person")),
            Decision::Open
        );

        let mut wh = order("wh-res", FreezeMode::Suspended, "2021-12-14T17:30:00+08:00", None);
        wh.scope.operations = vec!["registration".into()];
        let orders = vec![wh];
        let now = at("2021-12-20T00:00:00Z");
        assert!(matches!(
            decide(
                &orders,
                now,
                &req(Line::Medical, Some(Channel::Online), "change-contact")
            ),
            Decision::Refuse { resumes_at: None, .. }
        ));
        assert_eq!(
            decide(&orders, now, &req(Line::Medical, None, "record-payment")),
            Decision::Open,
            "payment is not registration"
        );

        // A whole-line order leaves queries answered; one that names them closes them.
        let all = order("all", FreezeMode::IntakeOnly, "2021-12-14T00:00:00+08:00", None);
        assert_eq!(
            decide(
                std::slice::from_ref(&all),
                now,
                &req(Line::Medical, None, "get-person")
            ),
            Decision::Open
        );
        let mut q = all.clone();
        q.scope.operations = vec!["query".into()];
        q.mode = FreezeMode::Suspended;
        assert!(matches!(
            decide(&[q], now, &req(Line::Medical, None, "get-person")),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn overlapping_orders_take_the_strictest_and_the_latest_planned_end() {
        let a = order(
            "a",
            FreezeMode::IntakeOnly,
            "2020-07-24T18:00:00+08:00",
            Some("2020-08-12T23:59:59+08:00"),
        );
        let b = order(
            "b",
            FreezeMode::IntakeOnly,
            "2020-07-24T18:00:00+08:00",
            Some("2020-08-20T00:00:00+08:00"),
        );
        let now = at("2020-07-30T00:00:00Z");
        let r = req(Line::Social, Some(Channel::Counter), "enroll-person");
        assert_eq!(
            decide(&[a.clone(), b.clone()], now, &r),
            Decision::Defer {
                order: "b".into(),
                resumes_at: Some(at("2020-08-19T16:00:00Z"))
            }
        );
        let mut s = order("s", FreezeMode::Suspended, "2020-07-25T00:00:00+08:00", None);
        s.scope.channels = vec![Channel::Counter];
        assert!(
            matches!(decide(&[a, b, s], now, &r), Decision::Refuse { order, resumes_at: None, .. } if order == "s")
        );
    }

    #[test]
    fn only_whole_line_orders_pause_events() {
        let mut o = order("x", FreezeMode::IntakeOnly, "2020-07-24T18:00:00+08:00", None);
        o.scope.lines = vec![Line::Medical];
        assert!(o.pauses_events(Line::Medical, "enrollment"));
        assert!(!o.pauses_events(Line::Social, "enrollment"));
        o.scope.channels = vec![Channel::Counter];
        assert!(!o.pauses_events(Line::Medical, "enrollment"));
    }

    #[test]
    fn invalid_orders_say_why() {
        let mut o = order(
            "x",
            FreezeMode::Suspended,
            "2020-07-24T18:00:00+08:00",
            Some("2020-07-24T18:00:00+08:00"),
        );
        assert_eq!(o.validate(), Err(OrderError::EndsBeforeStart("x".into())));
        o.ends_at = None;
        o.scope.operations = vec!["enrol".into()];
        assert_eq!(
            o.validate(),
            Err(OrderError::UnknownOperation("x".into(), "enrol".into()))
        );
        o.scope.operations.clear();
        o.redirect_to = Some(Channel::Counter);
        assert_eq!(o.validate(), Err(OrderError::RedirectIntoScope("x".into())));
    }

    #[test]
    fn deadlines_move_by_the_freeze_and_open_ended_ones_until_now() {
        // Tax collection stop 7-24 18:00 → 7-26 24:00 CST: 54 hours.
        let mut tax = order(
            "hz-tax",
            FreezeMode::Suspended,
            "2020-07-24T18:00:00+08:00",
            Some("2020-07-27T00:00:00+08:00"),
        );
        tax.scope.channels = vec![Channel::Tax];
        let w = deadline_windows(
            std::slice::from_ref(&tax),
            Line::Social,
            at("2020-08-01T00:00:00Z"),
        );
        assert_eq!(w, vec![(at("2020-07-24T10:00:00Z"), at("2020-07-26T16:00:00Z"))]);
        // A deadline of 7-25 24:00 CST inside the stop moves by 54 h to 7-28 06:00 CST.
        assert_eq!(
            extend_deadline(at("2020-07-25T16:00:00Z"), &w),
            at("2020-07-27T22:00:00Z")
        );
        // A deadline before the stop is untouched.
        assert_eq!(
            extend_deadline(at("2020-07-20T00:00:00Z"), &w),
            at("2020-07-20T00:00:00Z")
        );
        // Open-ended (Wuhan 12-14 24:00, to be announced): extends until now.
        let wh = order("wh-tax", FreezeMode::Suspended, "2021-12-15T00:00:00+08:00", None);
        let now = at("2021-12-20T16:00:00Z");
        let w = deadline_windows(&[wh], Line::Medical, now);
        assert_eq!(w, vec![(at("2021-12-14T16:00:00Z"), now)]);
    }
}

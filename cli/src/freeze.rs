//! `insurancectl freeze …` and `receipt show`: control messages on `insurance.control`
//! (DESIGN.md §5) and the answers of every service.
//!
//! One round: find which services have a control queue (`<service>.control`) and whether a
//! replica consumes it, publish the message with a private reply queue, and collect one
//! answer per running service until all have answered or `--timeout` passes. A service whose
//! queue has no consumer is reported as not running: an order waits in its queue and is
//! applied when it starts; a `status` question gets no answer from it.

use crate::args::{
    ChannelArg, Cli, DeadlinesArg, FreezeArgs, FreezeCmd, LineArg, ModeArg, OrderArgs, ReceiptCmd,
};
use crate::{APP_ID, EXIT_FAILURE, Report};
use anyhow::{Context, anyhow};
use contracts::freeze::{
    ControlMessage, DeadlineEffect, FreezeMode, FreezeOrder, FreezeScope, FreezeStatus, HeldOrder,
    ReceiptRecord, Timetable, cst,
};
use contracts::{Reply, ReplyStatus};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use messaging::broker::bounded;
use messaging::{Broker, BrokerConfig, Names};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The suite's services; those with a control queue on the broker are asked.
pub const SERVICES: &[&str] = &[
    "enrollment",
    "collection",
    "benefits",
    "card-issuance",
    "notification",
];

/// What one round brought back.
#[derive(Debug, Default)]
pub struct Round {
    /// Service → its answer.
    pub answers: BTreeMap<String, Reply>,
    /// Services whose control queue has no consumer (the message waits there).
    pub not_running: Vec<String>,
    /// Running services that did not answer within the timeout.
    pub silent: Vec<String>,
}

impl Round {
    fn code(&self) -> u8 {
        if !self.silent.is_empty() || self.answers.is_empty() && self.not_running.is_empty() {
            EXIT_FAILURE
        } else if self.answers.values().any(|r| r.status != ReplyStatus::Ok) {
            2
        } else {
            0
        }
    }
}

pub async fn run(cli: &Cli, args: &FreezeArgs, config: BrokerConfig) -> anyhow::Result<Report> {
    let to = args.to.as_deref();
    match &args.command {
        FreezeCmd::Plan { file, dry_run } => plan(cli, config, to, file, *dry_run).await,
        FreezeCmd::Order(o) => {
            let order = order_from_args(o)?;
            let msg = ControlMessage::Order {
                order: Box::new(order),
            };
            let round = round(cli, config, to, &msg).await?;
            Ok(acks_report(cli, &round, "order"))
        }
        FreezeCmd::Lift { id } => action(cli, config, to, ControlMessage::Lift { id: id.clone() }).await,
        FreezeCmd::Cancel { id } => action(cli, config, to, ControlMessage::Cancel { id: id.clone() }).await,
        FreezeCmd::Extend { id, until } => {
            let msg = ControlMessage::Extend {
                id: id.clone(),
                until: *until,
            };
            action(cli, config, to, msg).await
        }
        FreezeCmd::Status => {
            let round = round(cli, config, to, &ControlMessage::Status {}).await?;
            let statuses = statuses(&round)?;
            let mut report = Report::out(if cli.json {
                crate::commands::to_json(&statuses)?
            } else {
                status_text(&statuses)
            });
            finish(&mut report, &round);
            Ok(report)
        }
        FreezeCmd::List => {
            let round = round(cli, config, to, &ControlMessage::Status {}).await?;
            let statuses = statuses(&round)?;
            let mut report = Report::out(if cli.json {
                crate::commands::to_json(&orders_by_id(&statuses))?
            } else {
                list_text(&statuses)
            });
            finish(&mut report, &round);
            Ok(report)
        }
        FreezeCmd::Show { id } => {
            let round = round(cli, config, to, &ControlMessage::Status {}).await?;
            let statuses = statuses(&round)?;
            let held: Vec<(&str, &HeldOrder)> = statuses
                .iter()
                .filter_map(|s| {
                    s.orders
                        .iter()
                        .find(|o| o.order.id == *id)
                        .map(|o| (s.service.as_str(), o))
                })
                .collect();
            if held.is_empty() {
                let mut report = Report {
                    code: EXIT_FAILURE,
                    stderr: format!("error: no service holds a freeze order '{id}'\n"),
                    ..Default::default()
                };
                finish(&mut report, &round);
                return Ok(report);
            }
            let mut report = Report::out(if cli.json {
                let json: BTreeMap<&str, &HeldOrder> = held.iter().copied().collect();
                crate::commands::to_json(&json)?
            } else {
                show_text(&held)
            });
            finish(&mut report, &round);
            Ok(report)
        }
    }
}

pub async fn receipt(cli: &Cli, cmd: &ReceiptCmd, config: BrokerConfig) -> anyhow::Result<Report> {
    let ReceiptCmd::Show { id, to } = cmd;
    let round = round(
        cli,
        config,
        to.as_deref(),
        &ControlMessage::Receipt { id: id.clone() },
    )
    .await?;
    let found: Vec<ReceiptRecord> = round
        .answers
        .values()
        .filter(|r| r.status == ReplyStatus::Ok)
        .filter_map(|r| r.result.clone())
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .context("a service answered with something that is not a receipt")?;
    let mut report = match found.first() {
        Some(r) => Report::out(if cli.json {
            crate::commands::to_json(r)?
        } else {
            receipt_text(r)
        }),
        None => {
            // Every answer is a no: one line for the reason (NOT_FOUND from all, or the one
            // reason that is not NOT_FOUND, such as an id that is not a UUID).
            let why = round
                .answers
                .values()
                .filter_map(|r| r.error.as_ref())
                .find(|e| e.code != contracts::ErrorCode::NotFound)
                .map(crate::render::error_line)
                .unwrap_or_else(|| format!("no service holds receipt '{id}'"));
            Report {
                code: if round.answers.is_empty() { EXIT_FAILURE } else { 2 },
                stderr: format!("error: {why}\n"),
                ..Default::default()
            }
        }
    };
    for s in &round.not_running {
        let _ = writeln!(report.stderr, "note: {s} is not running; it was not asked");
    }
    for s in &round.silent {
        let _ = writeln!(report.stderr, "note: {s} did not answer in time");
    }
    if found.is_empty() && !round.silent.is_empty() {
        report.code = EXIT_FAILURE;
    }
    Ok(report)
}

async fn action(
    cli: &Cli,
    config: BrokerConfig,
    to: Option<&str>,
    msg: ControlMessage,
) -> anyhow::Result<Report> {
    let what = msg.action();
    let round = round(cli, config, to, &msg).await?;
    Ok(acks_report(cli, &round, what))
}

async fn plan(
    cli: &Cli,
    config: BrokerConfig,
    to: Option<&str>,
    file: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let timetable = Timetable::from_yaml(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let mut out = timetable_text(&timetable);
    if dry_run {
        if cli.json {
            return Ok(Report::out(crate::commands::to_json(&timetable)?));
        }
        out.push_str("(dry run: nothing was sent)\n");
        return Ok(Report::out(out));
    }
    let mut report = Report::default();
    let mut json = Vec::new();
    for order in timetable.by_start() {
        let msg = ControlMessage::Order {
            order: Box::new(order.clone()),
        };
        let round = round(cli, config.clone(), to, &msg).await?;
        let r = acks_report(cli, &round, &format!("order {}", order.id));
        json.push(serde_json::json!({"order": order.id, "answers": round.answers, "not_running": round.not_running, "silent": round.silent}));
        out.push_str(&r.stdout);
        report.stderr.push_str(&r.stderr);
        report.code = report.code.max(r.code);
    }
    report.stdout = if cli.json {
        crate::commands::to_json(&json)?
    } else {
        out
    };
    Ok(report)
}

fn order_from_args(o: &OrderArgs) -> anyhow::Result<FreezeOrder> {
    let deadlines = match o.deadlines {
        DeadlinesArg::Extend => DeadlineEffect::Extend,
        DeadlinesArg::None => DeadlineEffect::None,
        DeadlinesArg::MoveTo => DeadlineEffect::MoveTo {
            period: o.period.clone().unwrap_or_default(),
            opens: o
                .opens
                .ok_or_else(|| anyhow!("--deadlines move-to needs --opens"))?,
            closes: o
                .closes
                .ok_or_else(|| anyhow!("--deadlines move-to needs --closes"))?,
        },
    };
    let order = FreezeOrder {
        id: o.id.clone(),
        scope: FreezeScope {
            lines: o.lines.iter().map(|&l| LineArg::into(l)).collect(),
            services: o.services.clone(),
            channels: o.channels.iter().map(|&c| ChannelArg::into(c)).collect(),
            operations: o.operations.clone(),
            payer_kinds: o.payer_kinds.clone(),
        },
        mode: match o.mode {
            ModeArg::IntakeOnly => FreezeMode::IntakeOnly,
            ModeArg::Suspended => FreezeMode::Suspended,
        },
        starts_at: o
            .starts_at
            .unwrap_or_else(|| chrono::Utc::now().with_timezone(&cst())),
        ends_at: o.ends_at,
        reason: o.reason.clone(),
        announcement: o.announcement.clone(),
        deadlines,
        redirect_to: o.redirect_to.map(ChannelArg::into),
    };
    // Checked here too, so a typo is refused before anything is sent.
    order.validate().map_err(|e| anyhow!("{e} (nothing was sent)"))?;
    Ok(order)
}

/// One control message out, the answers in.
pub async fn round(
    cli: &Cli,
    config: BrokerConfig,
    to: Option<&str>,
    msg: &ControlMessage,
) -> anyhow::Result<Round> {
    let names = Names::new(cli.prefix.clone());
    let broker = crate::commands::connect(cli, config).await?;
    let result = round_on(&broker, &names, to, msg, Duration::from_secs(cli.timeout)).await;
    broker.close().await;
    result
}

async fn round_on(
    broker: &Broker,
    names: &Names,
    to: Option<&str>,
    msg: &ControlMessage,
    wait: Duration,
) -> anyhow::Result<Round> {
    let timeout = broker.timeout();
    let asked: Vec<&str> = match to {
        Some(s) => vec![s],
        None => SERVICES.to_vec(),
    };
    let mut round = Round::default();
    let mut running = Vec::new();
    for s in &asked {
        match consumers(broker, &names.control_queue(s)).await {
            Some(0) => round.not_running.push((*s).to_owned()),
            Some(_) => running.push((*s).to_owned()),
            None => {}
        }
    }
    if running.is_empty() && round.not_running.is_empty() {
        return Err(anyhow!(
            "no service has a control queue on this broker{} (is --prefix right? are the services deployed?)",
            to.map(|s| format!(" for '{s}'")).unwrap_or_default()
        ));
    }
    let ch = broker.channel().await?;
    bounded(
        "confirm.select",
        timeout,
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let q = bounded(
        "queue.declare",
        timeout,
        ch.queue_declare("".into(), opts, FieldTable::default()),
    )
    .await?;
    let consume = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut replies = bounded(
        "basic.consume",
        timeout,
        ch.basic_consume(q.name().clone(), "".into(), consume, FieldTable::default()),
    )
    .await?;
    let target = to.unwrap_or("all");
    let id =
        messaging::freeze::publish_control(&ch, names, timeout, target, msg, Some(q.name().as_str()), APP_ID)
            .await
            .with_context(|| format!("publishing to {}", names.control_exchange()))?;
    let id = id.to_string();
    let deadline = tokio::time::Instant::now() + wait;
    while running.iter().any(|s| !round.answers.contains_key(s)) {
        let next = tokio::time::timeout_at(deadline, replies.next()).await;
        let Ok(Some(Ok(d))) = next else { break };
        if d.properties.correlation_id().as_ref().map(|c| c.as_str()) != Some(id.as_str()) {
            continue;
        }
        let service = d
            .properties
            .kind()
            .as_ref()
            .and_then(|k| k.as_str().strip_suffix(".reply.v1"))
            .map(str::to_owned)
            .unwrap_or_else(|| "unknown".into());
        let reply: Reply = serde_json::from_slice(&d.data)
            .with_context(|| format!("{service} answered with something that is not a reply"))?;
        round.answers.insert(service, reply);
    }
    round.silent = running
        .into_iter()
        .filter(|s| !round.answers.contains_key(s))
        .collect();
    let _ = ch.close(200, "done".into()).await;
    Ok(round)
}

/// Consumers of `queue`, or `None` when it does not exist.
async fn consumers(broker: &Broker, queue: &str) -> Option<u32> {
    messaging::parking::inspect(broker, queue)
        .await
        .ok()
        .map(|(_, c)| c)
}

fn statuses(round: &Round) -> anyhow::Result<Vec<FreezeStatus>> {
    round
        .answers
        .iter()
        .filter(|(_, r)| r.status == ReplyStatus::Ok)
        .map(|(s, r)| {
            serde_json::from_value(r.result.clone().unwrap_or_default())
                .with_context(|| format!("{s} answered status with something that is not a status"))
        })
        .collect()
}

/// Appends what the round could not get to `report`, and sets its exit code.
fn finish(report: &mut Report, round: &Round) {
    for s in &round.not_running {
        let _ = writeln!(
            report.stderr,
            "note: {s} is not running (nothing consumes its control queue)"
        );
    }
    for s in &round.silent {
        let _ = writeln!(report.stderr, "error: {s} did not answer in time");
    }
    for (s, r) in &round.answers {
        if let Some(e) = &r.error {
            let _ = writeln!(report.stderr, "{s}: {}", crate::render::error_line(e));
        }
    }
    report.code = report.code.max(round.code());
}

fn acks_report(cli: &Cli, round: &Round, what: &str) -> Report {
    let mut report = Report::default();
    if cli.json {
        report.stdout = crate::commands::to_json(&serde_json::json!({
            "answers": round.answers, "not_running": round.not_running, "silent": round.silent
        }))
        .unwrap_or_default();
        report.code = round.code();
        return report;
    }
    report.stdout = acks_text(round, what);
    report.code = round.code();
    for s in &round.silent {
        let _ = writeln!(report.stderr, "error: {s} did not answer in time");
    }
    report
}

/// `what`, then one line per service.
pub fn acks_text(round: &Round, what: &str) -> String {
    let mut out = format!("{what}:\n");
    for (s, r) in &round.answers {
        let line = match (&r.error, &r.result) {
            (Some(e), _) => format!(
                "{}  {}",
                crate::render::status_word(r.status),
                crate::render::error_line(e)
            ),
            (None, Some(res)) => res
                .get("result")
                .and_then(|v| v.as_str())
                .unwrap_or(crate::render::status_word(r.status))
                .to_owned(),
            (None, None) => crate::render::status_word(r.status).to_owned(),
        };
        let _ = writeln!(out, "  {s:<14} {line}");
    }
    for s in &round.not_running {
        let _ = writeln!(
            out,
            "  {s:<14} not running: the message waits in its control queue"
        );
    }
    for s in &round.silent {
        let _ = writeln!(out, "  {s:<14} no answer in time");
    }
    out
}

fn when(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&cst()).format("%Y-%m-%d %H:%M").to_string()
}

fn until(t: &Option<chrono::DateTime<chrono::FixedOffset>>) -> String {
    t.as_ref()
        .map_or_else(|| "另行通知 (to be announced)".to_owned(), when)
}

fn list_or_all<T: std::fmt::Display>(v: &[T]) -> String {
    if v.is_empty() {
        "all".into()
    } else {
        v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

fn scope_text(s: &FreezeScope) -> String {
    let channels: Vec<&str> = s.channels.iter().map(|c| c.as_str()).collect();
    let mut out = format!(
        "lines {} · services {} · channels {} · operations {}",
        list_or_all(&s.lines),
        list_or_all(&s.services),
        list_or_all(&channels),
        if s.operations.is_empty() {
            "all but queries".into()
        } else {
            s.operations.join(",")
        }
    );
    if !s.payer_kinds.is_empty() {
        let _ = write!(out, " · payers {}", s.payer_kinds.join(","));
    }
    out
}

fn deadlines_text(d: &DeadlineEffect) -> String {
    match d {
        DeadlineEffect::Extend => "deadlines extended by the freeze".into(),
        DeadlineEffect::None => "deadlines unchanged".into(),
        DeadlineEffect::MoveTo {
            period,
            opens,
            closes,
        } => {
            format!("period {period} moved to {} → {}", when(opens), when(closes))
        }
    }
}

/// A timetable as an operator checks it before sending (times in China Standard Time).
pub fn timetable_text(t: &Timetable) -> String {
    let mut out = format!("timetable {} ({} orders; times CST)\n", t.name, t.orders.len());
    for o in t.by_start() {
        let _ = writeln!(
            out,
            "  {}  {}  {} → {}\n    {}\n    {}{}",
            o.id,
            o.mode.as_str(),
            when(&o.starts_at),
            until(&o.ends_at),
            scope_text(&o.scope),
            deadlines_text(&o.deadlines),
            o.redirect_to
                .map(|c| format!(" · refused requests go to {}", c.as_str()))
                .unwrap_or_default()
        );
    }
    out
}

/// `freeze status` for people.
pub fn status_text(statuses: &[FreezeStatus]) -> String {
    let mut out = String::new();
    for s in statuses {
        let _ = writeln!(out, "{}  (clock {})", s.service, when(&s.now));
        for l in &s.lines {
            let oldest = l
                .oldest_held
                .as_ref()
                .map(|t| format!(", oldest {}", when(t)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<8} {:<12} events {:<7} data sharing {:<4} backlog {}{oldest}{}",
                l.line.as_str(),
                l.mode,
                if l.events_paused { "paused" } else { "flowing" },
                if l.data_sharing_held { "held" } else { "open" },
                l.backlog,
                if l.orders_in_force.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", l.orders_in_force.join(", "))
                }
            );
        }
    }
    out
}

/// Order id → service → how that service holds it.
fn orders_by_id(statuses: &[FreezeStatus]) -> BTreeMap<String, BTreeMap<String, HeldOrder>> {
    let mut by_id: BTreeMap<String, BTreeMap<String, HeldOrder>> = BTreeMap::new();
    for s in statuses {
        for o in &s.orders {
            by_id
                .entry(o.order.id.clone())
                .or_default()
                .insert(s.service.clone(), o.clone());
        }
    }
    by_id
}

fn state_word(o: &HeldOrder) -> String {
    serde_json::to_value(o.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `freeze list`: one row per order, its state per service.
pub fn list_text(statuses: &[FreezeStatus]) -> String {
    let by_id = orders_by_id(statuses);
    if by_id.is_empty() {
        return "no freeze orders\n".into();
    }
    let mut out = String::new();
    for (id, held) in &by_id {
        let first = held
            .values()
            .next()
            .expect("an order held by one service at least");
        let states: Vec<String> = held
            .iter()
            .map(|(s, o)| format!("{s} {}", state_word(o)))
            .collect();
        let _ = writeln!(
            out,
            "{id}  {}  {} → {}  [{}]",
            first.order.mode.as_str(),
            when(&first.order.starts_at),
            until(&first.order.ends_at),
            states.join(", ")
        );
    }
    out
}

fn show_text(held: &[(&str, &HeldOrder)]) -> String {
    let o = &held[0].1.order;
    let mut out = format!(
        "{}  {}\n  {} → {}\n  {}\n  {}\n  reason: {}\n",
        o.id,
        o.mode.as_str(),
        when(&o.starts_at),
        until(&o.ends_at),
        scope_text(&o.scope),
        deadlines_text(&o.deadlines),
        o.reason
    );
    if !o.announcement.is_empty() {
        let _ = writeln!(out, "  announcement: {}", o.announcement);
    }
    if let Some(c) = o.redirect_to {
        let _ = writeln!(out, "  refused requests go to: {}", c.as_str());
    }
    for (s, h) in held {
        let lifted = h
            .lifted_at
            .as_ref()
            .map(|t| format!(" at {}", when(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {s:<14} {}{lifted}", state_word(h));
    }
    out
}

/// `receipt show` for people.
pub fn receipt_text(r: &ReceiptRecord) -> String {
    let mut out = format!(
        "receipt {}  {}\n  {}  (message {})\n  held by order {} on the {} line of {}\n",
        r.receipt.id, r.state, r.routing_key, r.message_id, r.order, r.line, r.service
    );
    if let Some(t) = &r.receipt.received_at {
        let _ = writeln!(out, "  received   {}", when(t));
    }
    let _ = writeln!(out, "  resumes    {}", until(&r.receipt.resumes_at));
    if let Some(t) = &r.processed_at {
        let _ = writeln!(out, "  processed  {}", when(t));
    }
    if let Some(reply) = &r.reply {
        let _ = write!(out, "  outcome    {}", crate::render::status_word(reply.status));
        match (&reply.error, &reply.result) {
            (Some(e), _) => {
                let _ = writeln!(out, "  {}", crate::render::error_line(e));
            }
            (None, Some(res)) => {
                let _ = writeln!(out, "  {res}");
            }
            (None, None) => out.push('\n'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANGZHOU: &str = include_str!("../../cutovers/hangzhou-2020.yaml");

    #[test]
    fn a_timetable_prints_in_china_standard_time_in_start_order() {
        let t = Timetable::from_yaml(HANGZHOU).unwrap();
        let text = timetable_text(&t);
        let p1 = text.find("hangzhou-2020-phase-1").unwrap();
        let p2 = text.find("hangzhou-2020-phase-2 ").unwrap();
        assert!(p1 < p2, "{text}");
        assert!(text.contains("2020-07-17 12:00 → 2020-07-24 18:00"), "{text}");
        assert!(
            text.contains("period 2020-07 moved to 2020-08-01 00:00 → 2020-08-26 00:00"),
            "{text}"
        );
        assert!(text.contains("refused requests go to counter"), "{text}");
        assert!(
            text.contains("channels counter · operations registration,assessment,payment,card"),
            "{text}"
        );
    }

    #[test]
    fn answers_give_the_exit_code() {
        let mut round = Round::default();
        assert_eq!(round.code(), EXIT_FAILURE, "nobody answered");
        round.answers.insert(
            "enrollment".into(),
            Reply::ok(serde_json::json!({"result": "stored"})),
        );
        round.not_running.push("benefits".into());
        assert_eq!(round.code(), 0);
        let text = acks_text(&round, "order x");
        assert!(text.contains("enrollment     stored"), "{text}");
        assert!(text.contains("benefits       not running"), "{text}");
        round.answers.insert(
            "collection".into(),
            Reply::rejected(contracts::ErrorBody::new(
                contracts::ErrorCode::NotFound,
                "no freeze order 'x'",
            )),
        );
        assert_eq!(round.code(), 2);
        round.silent.push("notification".into());
        assert_eq!(round.code(), EXIT_FAILURE);
    }
}

//! The agencies' real cutovers replayed in accelerated time against the whole suite (issue 7
//! §5, issue 14 §1): enrollment, collection, benefits, card issuance and notification run in
//! process on one drill clock, notification against a simulated SMS centre; a city is set up
//! on open lines before the drill's origin (an employee covered by paid contributions, with an
//! activated card; a pension-only worker), the timetable is planned with `insurancectl freeze
//! plan`, and traffic on all three lines through every channel (counter, online, mobile,
//! kiosk, bank, tax, institution) runs the whole timetable, with the tax authority subscribed
//! to both lines through the data-sharing channel.
//!
//! The oracle is the timetable itself: every reply must be what `contracts::freeze::decide`
//! says for the moment it was sent (open, `deferred` with the planned resume time,
//! `suspended` with its order, resume time and redirect). A request sent across a boundary
//! (the decision differs between send and reply) is counted, not judged. Every request is
//! answered (nothing lost); held requests are processed at the thaw in arrival order (a
//! change-contact held behind the enrollment it needs succeeds).
//!
//! Beyond the oracle: Wuhan's inpatient stay spans the settlement stop (interim settlement
//! before, re-entry after with no second deductible), the pension run and a card loss report
//! at a bank go through during the stop, deadlines are extended exactly, and every order is
//! announced before, at the start and at the end to each person of its line, once, and to no
//! one else; Hangzhou settles outpatients throughout phase 2. The tax authority's feed is held
//! through Hangzhou's phase 2 and released at its end in the order each service published, and
//! flows throughout Wuhan (no order of it names data sharing). The open lines' wall latency per
//! phase is printed (`--nocapture`), not asserted: timing is for the benchmarks.

mod common;

use chrono::{DateTime, Duration as Span, FixedOffset, Utc};
use common::{HANGZHOU, WUHAN, ctl, exit, spawn_in};
use contracts::freeze::{Decision, FreezeOrder, Request, Timetable, decide};
use contracts::{Channel, Line, Reply, ReplyStatus};
use messaging::client::Command;
use messaging::freeze::{Clock, ClockSettings};
use std::collections::BTreeMap;
use testkit::{TestEnv, WAIT, id_number, phone, send_command, wait_for};

/// One request of the drill traffic.
struct Probe {
    cmd: Command,
    payer: Option<&'static str>,
}

fn probe(
    line: Line,
    service: &str,
    name: &str,
    channel: Channel,
    payer: Option<&'static str>,
    body: serde_json::Value,
) -> Probe {
    let mut cmd = Command::new(line, service, name, &body);
    cmd.channel = Some(channel);
    Probe { cmd, payer }
}

fn enroll(n: u32, line: Line, channel: Channel, category: &'static str) -> Probe {
    let types = match (line, category) {
        (Line::Medical, "resident") => serde_json::json!(["resident_medical"]),
        (Line::Medical, _) => serde_json::json!(["employee_medical"]),
        _ => serde_json::json!(["pension"]),
    };
    probe(
        line,
        "enrollment",
        "enroll-person",
        channel,
        Some(category),
        serde_json::json!({
            "id_number": id_number(n), "name": format!("参保人{n}"), "phone": phone(n),
            "category": category, "insurance_types": types, "effective_month": "2021-12"
        }),
    )
}

fn payment(n: u32, line: Line, channel: Channel) -> Probe {
    probe(
        line,
        "collection",
        "record-payment",
        channel,
        None,
        serde_json::json!({
            "assessment_id": format!("drill-{n}"), "amount": "100.00",
            "paid_at": "2021-12-14T10:00:00+08:00", "tax_receipt_no": format!("TX{n:08}")
        }),
    )
}

/// One request sent: the drill clock before and after, the wall milliseconds, the reply.
struct Sent {
    before: DateTime<Utc>,
    after: DateTime<Utc>,
    ms: f64,
    reply: Reply,
}

impl Sent {
    async fn send(client: &messaging::client::CommandClient, clock: &Clock, p: &Probe) -> Sent {
        let before = clock.now();
        let wall = std::time::Instant::now();
        let reply = send_command(client, &p.cmd, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{} lost: {e}", p.cmd.routing_key()));
        Sent {
            before,
            ms: wall.elapsed().as_secs_f64() * 1000.0,
            after: clock.now(),
            reply,
        }
    }
}

/// What the drill saw: outcome → count.
#[derive(Default, Debug)]
struct Tally {
    outcomes: BTreeMap<String, u32>,
    /// Receipts given, with the request.
    receipts: Vec<(String, Command)>,
}

impl Tally {
    fn saw(&mut self, what: impl Into<String>) {
        *self.outcomes.entry(what.into()).or_default() += 1;
    }

    fn count(&self, what: &str) -> u32 {
        self.outcomes.get(what).copied().unwrap_or(0)
    }
}

fn instant(t: &Option<DateTime<FixedOffset>>) -> Option<DateTime<Utc>> {
    t.map(|t| t.with_timezone(&Utc))
}

/// Judges one reply against the timetable's decision; `Err` says what differs.
fn judge(expected: &Decision, reply: &Reply, thawing: bool) -> Result<String, String> {
    match expected {
        Decision::Open => match reply.status {
            ReplyStatus::Ok | ReplyStatus::Rejected => Ok("open".into()),
            // Just after an order ends, the line drains its backlog first; what comes in
            // meanwhile joins the backlog (arrival order).
            ReplyStatus::Deferred if thawing => Ok("deferred-during-thaw".into()),
            other => Err(format!("expected open, got {other:?}: {reply:?}")),
        },
        Decision::Defer { order, resumes_at } => {
            let receipt = reply
                .receipt
                .as_ref()
                .ok_or_else(|| format!("expected a receipt: {reply:?}"))?;
            if reply.status != ReplyStatus::Deferred || instant(&receipt.resumes_at) != *resumes_at {
                return Err(format!(
                    "expected deferred until {resumes_at:?} by {order}: {reply:?}"
                ));
            }
            Ok(format!("deferred:{order}"))
        }
        Decision::Refuse {
            order,
            resumes_at,
            redirect_to,
            announcement,
        } => {
            let s: contracts::Suspension = reply
                .result
                .clone()
                .and_then(|r| serde_json::from_value(r).ok())
                .ok_or_else(|| format!("expected suspended by {order}: {reply:?}"))?;
            if reply.status != ReplyStatus::Suspended
                || s.order != *order
                || instant(&s.resumes_at) != *resumes_at
                || s.use_channel != *redirect_to
                || s.announcement != *announcement
            {
                return Err(format!(
                    "expected suspended by {order} until {resumes_at:?} (use {redirect_to:?}): {reply:?}"
                ));
            }
            Ok(format!("suspended:{order}"))
        }
    }
}

/// The five services and the SMS centre of a drill, on one drill clock.
struct City {
    services: common::Services,
    smsc: smsc_sim::Smsc,
    workers: tokio::task::JoinHandle<()>,
}

const FIVE: [&str; 5] = [
    "enrollment",
    "collection",
    "benefits",
    "card-issuance",
    "notification",
];

/// Every service of the suite in process on `clock` (collection and enrollment of `region`),
/// notification against a simulated SMS centre: what a phone would show is what it received.
async fn spawn_city(env: &TestEnv, clock: ClockSettings, region: &str) -> City {
    let settings = |name: &str| common::drill_settings(env, name, &clock);
    let mut services = spawn_in(env, clock.clone(), region).await;
    let benefits = benefits::build(benefits::Settings {
        service: settings("benefits"),
    })
    .await
    .expect("benefits builds");
    let card = card_issuance::build(card_issuance::Settings {
        service: settings("card-issuance"),
    })
    .await
    .expect("card issuance builds");
    let smsc = smsc_sim::start(smsc_sim::SimConfig {
        system_id: "insurance".into(),
        password: "secret".into(),
        receipt_delay: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .expect("the SMSC simulator listens");
    let (base_sms, base_notify) = notification::base_settings();
    let sms = notification::sms::SmsSettings {
        address: smsc.addr.to_string(),
        password: "secret".into(),
        submits_per_second: 0,
        retry_ms: 200,
        poll_ms: 50,
        ..base_sms
    };
    let notification = notification::build(notification::Settings {
        service: settings("notification"),
        sms: sms.clone(),
        notify: base_notify.clone(),
    })
    .await
    .expect("notification builds");
    let workers = tokio::spawn(notification::workers(
        &notification,
        sms,
        base_notify,
        services.shutdown.clone(),
    ));
    services
        .start(env, benefits)
        .start(env, card)
        .start(env, notification);
    City {
        services,
        smsc,
        workers,
    }
}

/// Wall latency of one answered request, with the drill time it was sent at.
struct Latency {
    line: Line,
    at: DateTime<Utc>,
    ms: f64,
}

struct Drill {
    env: TestEnv,
    city: City,
    client: messaging::client::CommandClient,
    clock: Clock,
    orders: Vec<FreezeOrder>,
    tally: Tally,
    latencies: Vec<Latency>,
    /// Every judged outcome with the drill time it was sent at, for the report per phase.
    seen: Vec<(DateTime<Utc>, String)>,
    /// The held backlog of the five services (requests taken in, not yet processed), sampled
    /// once per round with the drill time.
    backlog: Vec<(DateTime<Utc>, i64)>,
    /// One connection for the samples, made once, reading the five schemas (a pool per
    /// sample, then one per service, pressed on the server's 100 connections with two drills
    /// at once).
    backlog_pool: Option<deadpool_postgres::Pool>,
    file: String,
    origin: DateTime<Utc>,
    /// Held for the drill's life: one drill at a time (see [`ONE_AT_A_TIME`]).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// The two drills run one after the other. Together they start ten services, each with a
/// pool per line, on a Postgres server shared with everything else (100 connections by
/// default): CI saw "too many clients" and the peak measured 102–104. One at a time, a drill
/// stays near half of that, and each sees the machine's two cores to itself, as the
/// latency check assumes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Drill {
    /// All five services on a drill clock that shows `origin` (CST) a minute from now and
    /// runs at `speed`. The lead leaves time to set the city up on open lines (before the
    /// origin) and to [`Drill::plan`] the timetable, on a loaded 2-core machine too.
    async fn start(file: &str, origin: &str, speed: f64, region: &str) -> Drill {
        let turn = ONE_AT_A_TIME.lock().await;
        let env = TestEnv::new();
        let origin: DateTime<FixedOffset> = format!("{origin}+08:00").parse().expect("origin");
        let wall_start = Utc::now() + Span::seconds(60);
        let settings = ClockSettings {
            drill_origin: Some(origin),
            drill_wall_start: Some(wall_start.fixed_offset()),
            drill_speed: Some(speed),
        };
        let clock = settings.clock();
        let city = spawn_city(&env, settings, region).await;
        testkit::services::wait_control_consumed(&env, &FIVE).await;
        let text = std::fs::read_to_string(file).expect("timetable");
        let orders = Timetable::from_yaml(&text).expect("timetable").orders;
        let client = env.client().await;
        Drill {
            env,
            city,
            client,
            clock,
            orders,
            tally: Tally::default(),
            latencies: Vec::new(),
            seen: Vec::new(),
            backlog: Vec::new(),
            backlog_pool: None,
            file: file.to_owned(),
            origin: origin.with_timezone(&Utc),
            _turn: turn,
        }
    }

    /// Plans the timetable through the command line (before the origin), then waits until the
    /// drill clock is an hour of drill time before its origin, where the traffic starts.
    async fn plan(&self) {
        exit(&ctl(&self.env, &["freeze", "plan", &self.file]).await, 0);
        assert!(
            self.clock.now() < self.origin,
            "set-up and planning took longer than the lead"
        );
        let soon = self.origin - Span::hours(1);
        wait_for("the drill clock near its origin", WAIT * 4, || async {
            (self.clock.now() >= soon).then_some(())
        })
        .await;
    }

    /// Sends `p` and judges the reply against the timetable at the moment it was sent.
    async fn send(&mut self, p: &Probe) -> Reply {
        let sent = Sent::send(&self.client, &self.clock, p).await;
        self.record(p, sent).0
    }

    /// Judges a reply `sent` for `p` against the timetable at the moment it was sent and
    /// counts its outcome; returns the reply and the outcome.
    fn record(&mut self, p: &Probe, sent: Sent) -> (Reply, String) {
        let Sent {
            before,
            after,
            ms,
            reply,
        } = sent;
        let req = Request {
            line: p.cmd.line,
            service: &p.cmd.service,
            channel: p.cmd.channel,
            operation: &p.cmd.name,
            payer_kind: p.payer,
        };
        let expected = decide(&self.orders, before, &req);
        if expected != decide(&self.orders, after, &req) {
            self.tally.saw("boundary");
            return (reply, "boundary".into());
        }
        // Within three wall seconds of an order's end the line may still be draining.
        let thawing = self.orders.iter().filter_map(|o| o.ends_at).any(|e| {
            let e = e.with_timezone(&Utc);
            e <= before && before - e < Span::milliseconds((3000.0 * self.speed()) as i64)
        });
        let outcome = match judge(&expected, &reply, thawing) {
            Ok(what) => {
                if what == "open" {
                    self.latencies.push(Latency {
                        line: p.cmd.line,
                        at: before,
                        ms,
                    });
                }
                self.seen.push((before, what.clone()));
                self.tally.saw(what.clone());
                what
            }
            Err(why) => panic!(
                "{} ({:?}) at {}: {why}",
                p.cmd.routing_key(),
                p.cmd.channel,
                before.with_timezone(&contracts::freeze::cst())
            ),
        };
        if let Some(r) = &reply.receipt {
            self.tally.receipts.push((r.id.clone(), p.cmd.clone()));
        }
        (reply, outcome)
    }

    fn speed(&self) -> f64 {
        match self.clock {
            Clock::Drill { speed, .. } => speed,
            Clock::Real => 1.0,
        }
    }

    fn until(&self, cst_local: &str) -> bool {
        self.clock.now() < cst(cst_local)
    }

    /// Samples the five services' held backlog (what a freeze took in and the thaw has not
    /// processed yet), for the report's peak per phase.
    async fn sample_backlog(&mut self) {
        if self.backlog_pool.is_none() {
            self.backlog_pool = Some(self.env.pool("enrollment").await);
        }
        let sql = FIVE
            .map(|service| {
                format!(
                    "(select count(*) from \"{}\".backlog where processed_at is null)",
                    self.env.schema(service)
                )
            })
            .join(" + ");
        let pool = self.backlog_pool.as_ref().expect("made above");
        // A figure for the report: a sample the server cannot take now is skipped.
        let n = async {
            let db = pool.get().await.map_err(|e| e.to_string())?;
            db.query_one(&format!("select ({sql})::bigint"), &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .map_err(|e| e.to_string())
        };
        let held = match n.await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("drill: a backlog sample skipped: {e}");
                return;
            }
        };
        self.backlog.push((self.clock.now(), held));
    }

    /// The drill time now, as an NHSA `yyyy-MM-dd HH:mm:ss` in China time.
    fn nhsa_now(&self) -> String {
        self.clock
            .now()
            .with_timezone(&contracts::freeze::cst())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// Per phase (`name`, from, to in drill time): requests by outcome, and the open requests'
    /// wall latency per line.
    fn latency_report(&self, windows: &[(&str, &str, &str)]) -> Vec<String> {
        let mut out = Vec::new();
        for (name, from, to) in windows {
            let (from, to) = (cst(from), cst(to));
            let mut outcomes: BTreeMap<&str, u32> = BTreeMap::new();
            for (_, what) in self.seen.iter().filter(|(at, _)| *at >= from && *at < to) {
                *outcomes.entry(what.as_str()).or_default() += 1;
            }
            out.push(format!("{name}: requests by outcome {outcomes:?}"));
            let peak = self
                .backlog
                .iter()
                .filter(|(at, _)| *at >= from && *at < to)
                .max_by_key(|(_, n)| *n);
            if let Some((at, n)) = peak {
                out.push(format!(
                    "{name}: held backlog at its peak {n} requests (at {}, sampled once per round)",
                    at.with_timezone(&contracts::freeze::cst()).format("%m-%d %H:%M")
                ));
            }
            for line in [Line::Medical, Line::Social, Line::Common] {
                let mut ms: Vec<f64> = self
                    .latencies
                    .iter()
                    .filter(|l| l.line == line && l.at >= from && l.at < to)
                    .map(|l| l.ms)
                    .collect();
                if ms.is_empty() {
                    continue;
                }
                ms.sort_by(f64::total_cmp);
                let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
                out.push(format!(
                    "{name}: {line} open requests {} median {:.1} ms p95 {:.1} ms",
                    ms.len(),
                    p(0.5),
                    p(0.95)
                ));
            }
        }
        out
    }

    async fn stop(self) {
        self.city.services.stop().await;
        let _ = self.city.workers.await;
        self.city.smsc.stop();
        drop(self.env);
    }
}

/// One event as seen: its message id, routing key and the drill time it was seen at.
#[derive(Clone)]
struct Seen {
    id: String,
    key: String,
    at: DateTime<Utc>,
}

/// The tax authority's feed (the data-sharing channel): a subscriber provisioned with
/// `insurancectl subscriber provision` and bound to everything, read as it arrives, beside a
/// tap of the events exchange that sees what the two business lines published when they
/// published it. The tap is bound before the subscriber exists and the services are idle
/// then, so the two see the same events.
struct Feed {
    published: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    received: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    _tap: testkit::PrivateQueue,
    _subscriber: messaging::broker::Broker,
    _cleanup: common::RemoveSubscribers,
}

const TAX_AUTHORITY: &str = "tax-authority";

/// What [`Feed::judge`] found.
struct FeedReport {
    events: usize,
    held: usize,
    duplicates: usize,
    /// Drill time from the window's end to the last held event received.
    released_within: Option<Span>,
}

impl Feed {
    async fn start(env: &TestEnv, clock: &Clock) -> Feed {
        let names = env.names();
        let tap = env.private_queue(Default::default()).await;
        for binding in ["medical.#", "social.#"] {
            tap.bind(&names.events_exchange(), binding).await;
        }
        let published = std::sync::Arc::default();
        let tap_reader = read(
            tap.channel.clone(),
            tap.name.clone(),
            clock.clone(),
            std::sync::Arc::clone(&published),
        );
        let cleanup = common::RemoveSubscribers {
            prefix: env.prefix(),
            names: vec![TAX_AUTHORITY],
        };
        let out = common::ctl_api(
            env,
            &[
                "subscriber",
                "provision",
                TAX_AUTHORITY,
                "--bind",
                "#",
                "--password-env",
                "DRILL_TAX_PASSWORD",
            ],
            &[("DRILL_TAX_PASSWORD", "drill-tax-password-1")],
        )
        .await;
        exit(&out, 0);
        let sub_broker = env.broker();
        let ch = sub_broker.channel().await.expect("a channel");
        let received = std::sync::Arc::default();
        let sub = read(
            ch,
            names.subscriber_queue(TAX_AUTHORITY),
            clock.clone(),
            std::sync::Arc::clone(&received),
        );
        Feed {
            published,
            received,
            readers: vec![tap_reader, sub],
            _tap: tap,
            _subscriber: sub_broker,
            _cleanup: cleanup,
        }
    }

    /// Waits until the subscriber has every event the lines published, then judges the feed
    /// against `window` (drill time; `None`: nothing may be held): every event received;
    /// those published inside the window (after `slack` of drill time from its start, while
    /// the services remove the shovels) received only after its end; the rest (but those
    /// within `slack` of either edge) received within `slack` of their publication; each
    /// publisher's events in the order it published them.
    async fn judge(&self, window: Option<(DateTime<Utc>, DateTime<Utc>)>, slack: Span) -> FeedReport {
        let ids = |v: &[Seen]| {
            v.iter()
                .map(|s| s.id.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        wait_for("the tax authority's feed complete", WAIT * 2, || async {
            let published = ids(&self.published.lock().expect("lock"));
            let received = ids(&self.received.lock().expect("lock"));
            (!published.is_empty() && published.is_subset(&received)).then_some(())
        })
        .await;
        let published = self.published.lock().expect("lock").clone();
        let received = self.received.lock().expect("lock").clone();
        // Each event's first receipt, in the order received.
        let mut first: BTreeMap<&str, &Seen> = BTreeMap::new();
        let mut order: Vec<&Seen> = Vec::new();
        for s in &received {
            if let std::collections::btree_map::Entry::Vacant(e) = first.entry(s.id.as_str()) {
                e.insert(s);
                order.push(s);
            }
        }
        let duplicates = received.len() - order.len();
        let (mut held, mut last_release) = (0, None::<DateTime<Utc>>);
        for p in &published {
            let got = first[p.id.as_str()];
            let inside = window.is_some_and(|(from, to)| p.at >= from + slack && p.at < to);
            // Near the start the shovels are being removed; after the end the released ones
            // go first.
            let at_edge = window.is_some_and(|(from, to)| p.at >= from - slack && p.at < to + slack);
            if inside {
                let to = window.expect("a window").1;
                assert!(
                    got.at >= to,
                    "{} published at {} reached the tax authority at {}, inside the data-sharing freeze",
                    p.key,
                    p.at,
                    got.at
                );
                held += 1;
                last_release = last_release.max(Some(got.at));
            } else if !at_edge {
                assert!(
                    got.at - p.at <= slack,
                    "{} published at {} reached the tax authority only at {}: held outside a data-sharing freeze",
                    p.key,
                    p.at,
                    got.at
                );
            }
        }
        // Each publisher (a service's relay on a line: `<line>.<service>.`) in its order.
        let publisher = |key: &str| key.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        let mut by_publisher: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for p in &published {
            by_publisher.entry(publisher(&p.key)).or_default().push(&p.id);
        }
        for (who, sent) in &by_publisher {
            let got: Vec<&str> = order
                .iter()
                .filter(|s| &publisher(&s.key) == who && sent.contains(&s.id.as_str()))
                .map(|s| s.id.as_str())
                .collect();
            assert_eq!(
                &got, sent,
                "{who}'s events reached the tax authority out of order"
            );
        }
        FeedReport {
            events: published.len(),
            held,
            duplicates,
            released_within: window.zip(last_release).map(|((_, to), last)| last - to),
        }
    }

    fn stop(self) {
        for r in self.readers {
            r.abort();
        }
    }
}

/// Reads `queue` on `ch` (acknowledging), recording each message's id, routing key and the
/// drill time.
fn read(
    ch: lapin::Channel,
    queue: String,
    clock: Clock,
    into: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions};
    tokio::spawn(async move {
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("a consumer");
        while let Some(Ok(d)) = consumer.next().await {
            let at = clock.now();
            let id = d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            into.lock().expect("lock").push(Seen {
                id,
                key: d.routing_key.to_string(),
                at,
            });
            let _ = d.ack(BasicAckOptions::default()).await;
        }
    })
}

/// The months from `from` (`YYYY-MM`) to `to`, both included.
fn months_between(from: &str, to: &str) -> Vec<String> {
    use contracts::ids::YearMonth;
    let (mut m, end) = (
        YearMonth::parse(from).expect("a month"),
        YearMonth::parse(to).expect("a month"),
    );
    let mut out = Vec::new();
    while m <= end {
        out.push(m.as_string());
        m = m.next().expect("a next month");
    }
    out
}

fn cst(local: &str) -> DateTime<Utc> {
    format!("{local}+08:00")
        .parse::<DateTime<FixedOffset>>()
        .expect("a time")
        .with_timezone(&Utc)
}

/// An employer with one employee on `line` from `month`, its base declared for `month`'s
/// year, and `month` assessed; returns the deadlines of the month's assessments by payer kind
/// (`employer`, and `person` for a flexible worker enrolled alongside).
async fn assessed_deadlines(d: &Drill, seed: u32, line: Line, month: &str) -> BTreeMap<String, String> {
    let ok = |name: &'static str, body: serde_json::Value| {
        let service = if name.ends_with("-month") || name == "declare-wages" {
            "collection"
        } else {
            "enrollment"
        };
        let cmd = Command::new(line, service, name, &body);
        async move {
            let r = send_command(&d.client, &cmd, WAIT).await.expect("a reply");
            assert_eq!(r.status, ReplyStatus::Ok, "{name}: {r:?}");
        }
    };
    let code = testkit::credit_code(seed);
    let (employee, flexible) = (id_number(seed), id_number(seed + 1));
    let types = if line == Line::Medical {
        serde_json::json!(["employee_medical"])
    } else {
        serde_json::json!(["pension"])
    };
    ok(
        "register-employer",
        serde_json::json!({"credit_code": code, "name": "单位", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    ok(
        "add-staff",
        serde_json::json!({"employer_credit_code": code, "persons": [{"id_number": employee, "name": "员工", "phone": "13800000000"}],
                           "insurance_types": types, "month": month}),
    )
    .await;
    ok(
        "enroll-person",
        serde_json::json!({"id_number": flexible, "name": "灵活", "phone": phone(seed + 1), "category": "flexible",
                           "insurance_types": types, "effective_month": month}),
    )
    .await;
    // Collection learns of the staff through events.
    let wages = Command::new(
        line,
        "collection",
        "declare-wages",
        &serde_json::json!({"employer_credit_code": code, "year": month[..4].parse::<i32>().expect("a year"),
                            "wages": [{"id_number": employee, "previous_year_average": "6000.00"}]}),
    );
    wait_for("collection knows the employee", WAIT, || async {
        let r = send_command(
            &d.client,
            &wages.clone().with_message_id(uuid::Uuid::now_v7()),
            WAIT,
        )
        .await
        .ok()?;
        (r.status == ReplyStatus::Ok).then_some(())
    })
    .await;
    let pool = d.env.pool("collection").await;
    wait_for("collection knows the flexible worker", WAIT, || async {
        let db = pool.get().await.ok()?;
        let n: i64 = db
            .query_one("select count(*) from persons where id_number = $1", &[&flexible])
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    ok("assess-month", serde_json::json!({"month": month})).await;
    let db = pool.get().await.expect("db");
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").expect("a month");
    db.query(
        "select payer_kind, deadline::text from assessments where line = $1 and month = $2",
        &[&line.as_str(), &first],
    )
    .await
    .expect("assessments")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn with_id(mut p: Probe) -> Probe {
    p.cmd.message_id = Some(uuid::Uuid::now_v7());
    p
}

/// A designated level-3 hospital of the seeded policy data (placeholders, V1__benefits.sql):
/// inpatient deductible 800.00, pooled fund 85 %.
const H3: &str = "H42010000001";

/// A person of the drill's set-up: enrolled before the origin, with a phone to watch.
struct Resident {
    id: String,
    phone: String,
    /// The medical insurance number benefits knows the person by (employees only).
    psn_no: Option<String>,
}

impl Drill {
    /// Sends an untimed set-up command and expects `ok`.
    async fn ok(
        &self,
        line: Line,
        service: &str,
        name: &str,
        channel: Channel,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let mut cmd = Command::new(line, service, name, &body);
        cmd.channel = Some(channel);
        let r = send_command(&self.client, &cmd, WAIT).await.expect("a reply");
        assert_eq!(r.status, ReplyStatus::Ok, "{name}: {r:?}");
        r.result.unwrap_or_default()
    }

    async fn count(&self, service: &str, sql: &str, arg: &str) -> i64 {
        let db = self.env.pool(service).await.get().await.expect("db");
        db.query_one(sql, &[&arg]).await.expect("a count").get(0)
    }

    /// Waits until the SMS centre has received at least one message for `phone`: the
    /// notification service then holds the contact.
    async fn texted(&self, phone: &str) {
        wait_for(&format!("an SMS to {phone}"), WAIT, || async {
            (!self.city.smsc.received_by(phone).is_empty()).then_some(())
        })
        .await;
    }

    /// An employee of a new employer on the medical line from `month`, that month assessed and
    /// paid at `paid_at` through collection (covered from the month after), a card picked up
    /// and activated at the bank (the bank's answers played as the bank would send them).
    async fn covered_employee(&self, seed: u32, month: &str, paid_at: &str) -> Resident {
        let code = testkit::credit_code(seed);
        let id = id_number(seed);
        let phone = phone(seed);
        let m = Line::Medical;
        self.ok(m, "enrollment", "register-employer", Channel::Counter,
            serde_json::json!({"credit_code": code, "name": "演练单位", "contact": {"name": "李", "phone": "13900000001"}})).await;
        let enrolled = self.ok(m, "enrollment", "enroll-person", Channel::Counter,
            serde_json::json!({"id_number": id, "name": "演练职工", "phone": phone, "category": "employee",
                               "insurance_types": ["employee_medical"], "employer_credit_code": code, "effective_month": month})).await;
        let psn_no = enrolled["person_id"].as_str().expect("a person id").to_owned();
        wait_for("collection knows the employee", WAIT, || async {
            (self
                .count(
                    "collection",
                    "select count(*) from persons where id_number = $1",
                    &id,
                )
                .await
                == 1)
                .then_some(())
        })
        .await;
        self.ok(m, "collection", "declare-wages", Channel::Counter,
            serde_json::json!({"employer_credit_code": code, "year": month[..4].parse::<i32>().expect("a year"),
                               "wages": [{"id_number": id, "previous_year_average": "5000.00"}]})).await;
        self.ok(
            m,
            "collection",
            "assess-month",
            Channel::Counter,
            serde_json::json!({"month": month}),
        )
        .await;
        let db = self.env.pool("collection").await.get().await.expect("db");
        let row = db
            .query_one(
                "select assessment_id::text, due::text from assessments where payer_id = $1 and month = $2::text::date",
                &[&code, &format!("{month}-01")],
            )
            .await
            .expect("the employer's assessment");
        let (assessment, due): (String, String) = (row.get(0), row.get(1));
        self.ok(
            m,
            "collection",
            "record-payment",
            Channel::Tax,
            serde_json::json!({"assessment_id": assessment, "amount": due, "paid_at": paid_at,
                               "tax_receipt_no": format!("TX-{seed}")}),
        )
        .await;
        wait_for("benefits sees the month paid", WAIT, || async {
            let sql = format!(
                "select count(*) from paid_months where person_id = $1::text::uuid and month = '{month}-01'"
            );
            (self.count("benefits", &sql, &psn_no).await >= 1).then_some(())
        })
        .await;
        // The card: applied at the counter, the bank's steps, picked up and activated.
        let c = Line::Common;
        wait_for("card issuance knows the person", WAIT, || async {
            let sql = "select count(*) from person_enrollments where id_number = $1 and status = 'active'";
            (self.count("card-issuance", sql, &id).await > 0).then_some(())
        })
        .await;
        let app = self
            .ok(
                c,
                "card-issuance",
                "apply-card",
                Channel::Counter,
                serde_json::json!({"id_number": id, "bank": "ICBC"}),
            )
            .await;
        let app = app["application_id"].as_str().expect("an application").to_owned();
        self.ok(
            c,
            "card-issuance",
            "review-photo",
            Channel::Counter,
            serde_json::json!({"id_number": id, "approved": true}),
        )
        .await;
        for (name, body) in [
            (
                "record-bank-account",
                serde_json::json!({"opened": true, "financial_account": format!("6222{}", &id[6..18])}),
            ),
            (
                "record-production",
                serde_json::json!({"produced": true, "card_number": format!("K{}", &app[app.len() - 12..])}),
            ),
            (
                "record-shipment",
                serde_json::json!({"tracking_number": "SF1234567890"}),
            ),
            (
                "record-arrival",
                serde_json::json!({"branch": "工商银行江汉支行"}),
            ),
        ] {
            let mut body = body;
            body["id_number"] = serde_json::json!(id);
            body["application_id"] = serde_json::json!(app);
            self.ok(c, "card-issuance", name, Channel::Bank, body).await;
        }
        self.ok(c, "card-issuance", "pick-up-card", Channel::Bank,
            serde_json::json!({"id_number": id, "representative": {"by": "self"}, "documents": ["id_card"], "activate": true})).await;
        Resident {
            id,
            phone,
            psn_no: Some(psn_no),
        }
    }

    /// A retiree for the pension run: a man who turned 60 on 2021-10-05, 190 months of pension
    /// carried over by a transfer from Jinan, retirement applied for on 11-25 and approved (on
    /// the drill clock, before the origin). Returns the person and the approval's result (the
    /// monthly pension and the month it is paid from).
    async fn retiree(&self, seed: u32) -> (Resident, serde_json::Value) {
        let id = testkit::id_born("1961-10-05", seed, true);
        let phone = phone(seed);
        let r = self
            .ok(Line::Social, "enrollment", "transfer-in", Channel::Counter,
                serde_json::json!({"certificate": {"certificate_id": uuid::Uuid::now_v7().to_string(), "id_number": id,
                        "name": "演练退休人", "insurance_types": ["pension"], "from_region": "370100",
                        "to_region": "420100", "contribution_history_ref": "jinan/history",
                        "issued_at": "2021-10-08T09:00:00+08:00", "contribution_months": 190,
                        "pension_account_balance": "60000.00"},
                    "phone": phone, "category": "flexible", "effective_month": "2021-10"}))
            .await;
        let psn = r["person_id"].as_str().expect("a person id").to_owned();
        wait_for("benefits to see the transfer", WAIT, || async {
            (self
                .count(
                    "benefits",
                    "select count(*) from carried_contributions where person_id::text = $1",
                    &psn,
                )
                .await
                == 1)
                .then_some(())
        })
        .await;
        let applied = self
            .ok(Line::Social, "benefits", "apply-retirement", Channel::Counter,
                serde_json::json!({"id_number": id, "position": "worker", "applied_at": "2021-11-25T10:00:00+08:00"}))
            .await;
        let approved = self
            .ok(
                Line::Social,
                "benefits",
                "review-retirement",
                Channel::Counter,
                serde_json::json!({"application_id": applied["application_id"], "action": "approve",
                                   "reviewer": "演练审核员"}),
            )
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        (
            Resident {
                id,
                phone,
                psn_no: None,
            },
            approved,
        )
    }

    /// A flexible worker enrolled in pension only (the social line), from `month`.
    async fn pension_only(&self, seed: u32, month: &str) -> Resident {
        let (id, phone) = (id_number(seed), phone(seed));
        self.ok(Line::Social, "enrollment", "enroll-person", Channel::Counter,
            serde_json::json!({"id_number": id, "name": "演练灵活就业", "phone": phone, "category": "flexible",
                               "insurance_types": ["pension"], "effective_month": month})).await;
        Resident {
            id,
            phone,
            psn_no: None,
        }
    }

    /// The announcements of every order the SMS centre delivered to `phone`: order → count.
    fn announcements_to(&self, phone: &str) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for m in self.city.smsc.received_by(phone) {
            for o in &self.orders {
                let text = o.announcement.trim().trim_end_matches(['。', '.', '；', ';']);
                if !text.is_empty() && m.text.contains(text) {
                    *seen.entry(o.id.clone()).or_default() += 1;
                }
            }
        }
        seen
    }

    /// Every announcement the SMS centre received went to a person or employer of its order's
    /// line: a phone that person or employer had at some version (enrollment's history), so
    /// that a contact changed during the drill counts with both numbers. Returns how many.
    async fn announced_to_no_one_else(&self) -> usize {
        let db = self.env.pool("enrollment").await.get().await.expect("db");
        let rows = db
            .query(
                "select e.line, p.phone from enrollments e join persons p using (person_id)
                 union select e.line, h.snapshot->>'phone' from enrollments e
                   join history h on h.entity = 'person' and h.entity_id = e.person_id
                 union select l.line, m.contact_phone from employer_lines l join employers m using (credit_code)
                 union select l.line, h.snapshot->>'contact_phone' from employer_lines l join employers m using (credit_code)
                   join history h on h.entity = 'employer' and h.entity_id = m.employer_id
                 union select l.line, h.snapshot->'contact'->>'phone' from employer_lines l join employers m using (credit_code)
                   join history h on h.entity = 'employer' and h.entity_id = m.employer_id",
                &[],
            )
            .await
            .expect("the lines' phones");
        let mut phones: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for r in rows {
            if let Some(phone) = r.get::<_, Option<String>>(1) {
                phones.entry(r.get(0)).or_default().insert(phone);
            }
        }
        let mut checked = 0;
        for m in self.city.smsc.received() {
            for o in &self.orders {
                let text = o.announcement.trim().trim_end_matches(['。', '.', '；', ';']);
                if text.is_empty() || !m.text.contains(text) {
                    continue;
                }
                let lines: Vec<String> = if o.scope.lines.is_empty() {
                    vec!["medical".into(), "social".into()]
                } else {
                    o.scope.lines.iter().map(|l| l.to_string()).collect()
                };
                assert!(
                    lines
                        .iter()
                        .any(|l| phones.get(l).is_some_and(|p| p.contains(&m.destination))),
                    "the announcement of {} went to {}…, no person or employer of {lines:?}",
                    o.id,
                    &m.destination[..3.min(m.destination.len())]
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "no announcement was received at all");
        checked
    }

    /// Waits until `phone` has had each order of its line announced three times (before, at
    /// the start, at the end) and none of the other line's, then checks that nothing came twice.
    async fn announced_once_per_phase(&self, phone: &str, line: Line) {
        let expected: BTreeMap<String, usize> = self
            .orders
            .iter()
            .filter(|o| o.scope.lines.is_empty() || o.scope.lines.contains(&line))
            .map(|o| (o.id.clone(), 3))
            .collect();
        // Polled to a deadline, then compared: a failure shows what did arrive.
        let deadline = std::time::Instant::now() + WAIT * 2;
        while std::time::Instant::now() < deadline {
            let seen = self.announcements_to(phone);
            if expected
                .iter()
                .all(|(o, n)| seen.get(o).copied().unwrap_or(0) >= *n)
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            self.announcements_to(phone),
            expected,
            "announcements to {phone} ({line})"
        );
        // Each announcement text once: no phase of an order sent twice.
        let texts: Vec<_> = self
            .city
            .smsc
            .received_by(phone)
            .into_iter()
            .filter(|m| {
                self.orders.iter().any(|o| {
                    let t = o.announcement.trim().trim_end_matches(['。', '.', '；', ';']);
                    !t.is_empty() && m.text.contains(t)
                })
            })
            .collect();
        let distinct: std::collections::BTreeSet<&str> = texts.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(distinct.len(), texts.len(), "a text sent twice to {phone}");
    }
}

fn settle_body(msgid: &str, mdtrt: &str, who: &Resident, medfee: &str, interim: bool) -> serde_json::Value {
    let mut b = serde_json::json!({"msgid": msgid, "fixmedins_code": H3, "mdtrt_id": mdtrt,
        "psn_no": who.psn_no.as_deref().expect("an insured person"), "mdtrt_cert_type": "02",
        "mdtrt_cert_no": who.id, "medfee_sumamt": medfee, "acct_used_flag": "0", "insutype": "310"});
    if interim {
        b["mid_setl_flag"] = serde_json::json!("1");
    }
    b
}

fn fee_at(sn: &str, amount: &str, at: &str) -> serde_json::Value {
    serde_json::json!({"feedetl_sn": sn, "med_list_codg": "XA01", "cnt": "1", "pric": amount,
           "det_item_fee_sumamt": amount, "fee_ocur_time": at})
}

fn at_institution(name: &str, body: serde_json::Value) -> Probe {
    probe(Line::Medical, "benefits", name, Channel::Institution, None, body)
}

/// The Wuhan orders without an end (business "resumes step by step", 另行通知).
const OPEN_ENDED: [&str; 5] = [
    "wuhan-2021-resident-medical",
    "wuhan-2021-social-arrears-back-payment",
    "wuhan-2021-tax-bank-collection",
    "wuhan-2021-employee-medical",
    "wuhan-2021-social-business",
];

/// One outpatient visit of `who` now: registered (2201), fees uploaded, settled (2207). Each
/// step is judged; what the timetable refuses stops the visit there (the patient pays cash).
async fn outpatient(d: &mut Drill, n: u32, who: &Resident) -> Option<Reply> {
    let now = d.nhsa_now();
    let psn = who.psn_no.clone().expect("an insured person");
    let reg = d
        .send(&with_id(at_institution(
            "register-visit",
            serde_json::json!({"msgid": format!("OP{n}"), "fixmedins_code": H3, "psn_no": psn, "insutype": "310",
                               "mdtrt_cert_type": "02", "mdtrt_cert_no": who.id, "ipt_otp_no": format!("N-OP{n}"),
                               "begntime": now, "self_pay": false}),
        )))
        .await;
    let mdtrt = reg.result.as_ref()?.get("mdtrt_id")?.as_str()?.to_owned();
    let up = d
        .send(&with_id(at_institution(
            "upload-fees",
            serde_json::json!({"mdtrt_id": mdtrt, "psn_no": psn, "feedetail": [fee_at("1", "100.00", &now)]}),
        )))
        .await;
    if up.status != ReplyStatus::Ok {
        return None;
    }
    Some(
        d.send(&with_id(at_institution(
            "settle",
            settle_body(&format!("OPS{n}"), &mdtrt, who, "100.00", false),
        )))
        .await,
    )
}

#[tokio::test]
async fn the_wuhan_2021_cutover_replayed_across_the_five_services() {
    // 12-14 16:00 → 2022-01-01 14:00 at six hours a second, all five services on one clock.
    let mut d = Drill::start(WUHAN, "2021-12-14T17:00:00", 21_600.0, "420100").await;
    let feed = Feed::start(&d.env, &d.clock).await;
    // Set-up on open lines, before the origin: an employee covered for December (November
    // paid on 11-20) with an activated card, and a pension-only flexible worker.
    let ann = d
        .covered_employee(8_100_000, "2021-11", "2021-11-20T10:00:00+08:00")
        .await;
    let bo = d.pension_only(8_200_000, "2021-11").await;
    let (cy, award) = d.retiree(8_400_000).await;
    d.texted(&ann.phone).await;
    d.texted(&bo.phone).await;
    d.plan().await;

    // The arrears back-payment stop (12-14 17:30) is the one order refusing a social payment
    // at the counter until the business stop at 12-15 17:30 (four wall seconds); the rounds'
    // tax payments meet it only until 12-15 00:00, about one wall second, so whether a slow
    // round saw it was luck. One payment sent at 12-14 18:00 by its own task, whatever the
    // round rate, and judged in the first round after its reply.
    let mut arrears = Some({
        let (client, clock) = (d.env.client().await, d.clock.clone());
        let p = with_id(payment(9_999_001, Line::Social, Channel::Counter));
        let at = cst("2021-12-14T18:00:00");
        tokio::spawn(async move {
            wait_for("12-14 18:00 on the drill clock", WAIT * 4, || async {
                (clock.now() >= at).then_some(())
            })
            .await;
            let sent = Sent::send(&client, &clock, &p).await;
            (p, sent)
        })
    });

    let mut n = 0u32;
    let mut next_round = d.clock.now();
    let (mut stay, mut interim, mut during, mut announced, mut outpatient_ok) =
        (None::<String>, None, false, false, 0u32);
    while d.until("2022-01-01T14:00:00") {
        n += 1;
        d.sample_backlog().await;
        let round = [
            enroll(n * 10 + 1, Line::Medical, Channel::Counter, "resident"),
            enroll(n * 10 + 2, Line::Medical, Channel::Online, "flexible"),
            enroll(n * 10 + 3, Line::Social, Channel::Mobile, "flexible"),
            probe(
                Line::Social,
                "enrollment",
                "get-person",
                Channel::Kiosk,
                None,
                serde_json::json!({"id_number": id_number(n * 10 + 3)}),
            ),
            payment(n * 10 + 5, Line::Social, Channel::Tax),
            payment(n * 10 + 6, Line::Medical, Channel::Bank),
            at_institution(
                "person-info",
                serde_json::json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": ann.id}),
            ),
            probe(
                Line::Common,
                "card-issuance",
                "get-card-status",
                Channel::Bank,
                None,
                serde_json::json!({"id_number": ann.id}),
            ),
        ];
        for p in round {
            d.send(&with_id(p)).await;
        }
        // Judged against the timetable as it stood (the open-ended orders get their end later).
        if let Some(task) = arrears.take_if(|t| t.is_finished()) {
            let (p, sent) = task.await.expect("the arrears payment's task");
            let (_, outcome) = d.record(&p, sent);
            assert_eq!(
                outcome, "suspended:wuhan-2021-social-arrears-back-payment",
                "a social payment at the counter at 12-14 18:00"
            );
        }
        if let Some(r) = outpatient(&mut d, n, &ann).await
            && r.status == ReplyStatus::Ok
        {
            outpatient_ok += 1;
        }
        // Ann is admitted on 12-18 and still in hospital on 12-21: an interim settlement
        // 中途结算 before the stop (the cut-off is 12-22 17:00, the stop 18:00).
        if stay.is_none() && !d.until("2021-12-18T09:00:00") {
            let adm = d
                .send(&with_id(at_institution(
                    "admit",
                    serde_json::json!({"msgid": "WH-ADM", "fixmedins_code": H3, "psn_no": ann.psn_no, "insutype": "310",
                                       "mdtrt_cert_type": "02", "mdtrt_cert_no": ann.id, "ipt_otp_no": "N-WH-ADM",
                                       "begntime": "2021-12-18 09:00:00", "self_pay": false}),
                )))
                .await;
            assert_eq!(adm.status, ReplyStatus::Ok, "admitted: {adm:?}");
            stay = adm.result.and_then(|r| r["mdtrt_id"].as_str().map(str::to_owned));
        }
        if let (Some(s), None) = (&stay, &interim)
            && !d.until("2021-12-21T18:00:00")
        {
            let fees = [
                fee_at("1", "3000.00", "2021-12-18 10:00:00"),
                fee_at("2", "2000.00", "2021-12-21 10:00:00"),
            ];
            let up = d
                .send(&with_id(at_institution(
                    "upload-fees",
                    serde_json::json!({"mdtrt_id": s, "psn_no": ann.psn_no, "feedetail": fees}),
                )))
                .await;
            assert_eq!(up.status, ReplyStatus::Ok, "fees: {up:?}");
            let r = d
                .send(&with_id(at_institution(
                    "settle",
                    settle_body("WH-S1", s, &ann, "5000.00", true),
                )))
                .await;
            assert_eq!(r.status, ReplyStatus::Ok, "interim settlement: {r:?}");
            let r = r.result.expect("a settlement");
            // 5000.00: deductible 800.00, fund (5000 − 800) × 85 % = 3570.00.
            assert_eq!(
                (r["act_pay_dedc"].as_str(), r["hifp_pay"].as_str()),
                (Some("800.00"), Some("3570.00")),
                "{r}"
            );
            interim = Some(r);
        }
        // During the stop: settlement is refused with its resume time (the patient advances
        // the money), while pensions are paid and banks take card loss reports.
        if !during && !d.until("2021-12-24T00:00:00") {
            during = true;
            let s = stay.clone().expect("admitted");
            let r = d
                .send(&with_id(at_institution(
                    "settle",
                    settle_body("WH-S2", &s, &ann, "3000.00", false),
                )))
                .await;
            assert_eq!(r.status, ReplyStatus::Suspended, "{r:?}");
            for (line, service, name, channel, body, what) in [
                (
                    Line::Social,
                    "benefits",
                    "run-benefit-payments",
                    Channel::Counter,
                    serde_json::json!({"month": "2021-12", "kind": "pension"}),
                    "the pension run",
                ),
                (
                    Line::Common,
                    "card-issuance",
                    "report-loss",
                    Channel::Bank,
                    serde_json::json!({"id_number": ann.id, "kind": "temporary"}),
                    "a loss report at a bank",
                ),
                (
                    Line::Common,
                    "card-issuance",
                    "lift-loss",
                    Channel::Bank,
                    serde_json::json!({"id_number": ann.id}),
                    "the card found again",
                ),
            ] {
                let r = d
                    .send(&with_id(probe(line, service, name, channel, None, body)))
                    .await;
                assert_eq!(r.status, ReplyStatus::Ok, "{what} during the stop: {r:?}");
                if name == "run-benefit-payments" {
                    // The retiree's pension is in the batch: every month from the award's
                    // first to December, at the approved monthly amount.
                    let batch = r.result.clone().expect("the batch");
                    let item = batch["items"]
                        .as_array()
                        .expect("items")
                        .iter()
                        .find(|i| i["id_number"] == cy.id.as_str())
                        .unwrap_or_else(|| panic!("the retiree is not in the pension run: {batch}"));
                    let from = award["from_month"].as_str().expect("from_month");
                    let months = months_between(&from[..7], "2021-12");
                    assert_eq!(item["months"], serde_json::json!(months), "{item}");
                    let monthly: rust_decimal::Decimal = award["pension"]["monthly_pension"]
                        .as_str()
                        .expect("the monthly pension")
                        .parse()
                        .expect("money");
                    let amount: rust_decimal::Decimal =
                        item["amount"].as_str().expect("amount").parse().expect("money");
                    assert_eq!(
                        amount,
                        monthly * rust_decimal::Decimal::from(months.len()),
                        "{item}"
                    );
                    assert_eq!(batch["status"], "ordered", "{batch}");
                    eprintln!(
                        "wuhan drill: the pension run during the stop ordered {} item(s), {}: the retiree's {} month(s) at {monthly}",
                        batch["item_count"],
                        batch["total"],
                        months.len()
                    );
                }
            }
        }
        // 12-27: the agency announces that business resumes on 2022-01-01 12:00: the orders
        // "to be announced" get their end (`freeze extend`), and the oracle learns it too.
        if !announced && !d.until("2021-12-27T00:00:00") {
            announced = true;
            let until: DateTime<FixedOffset> = "2022-01-01T12:00:00+08:00".parse().expect("a time");
            for id in OPEN_ENDED {
                exit(
                    &ctl(&d.env, &["freeze", "extend", id, "--until", &until.to_rfc3339()]).await,
                    0,
                );
                let o = d
                    .orders
                    .iter_mut()
                    .find(|o| o.id == id)
                    .expect("in the timetable");
                o.ends_at = Some(until);
            }
        }
        next_round += Span::hours(1);
        let due = next_round;
        if d.clock.now() < due {
            wait_for("the next round", WAIT, || async {
                (d.clock.now() >= due).then_some(())
            })
            .await;
        }
    }
    assert!(during, "the drill never reached the settlement stop");
    // After the restart (12-31 23:00) the hospital re-enters 补录 the discharge of 12-25 and the
    // fees with their real dates, and settles them: no second deductible for the stay.
    let s = stay.clone().expect("admitted");
    d.ok(
        Line::Medical,
        "benefits",
        "discharge",
        Channel::Institution,
        serde_json::json!({"mdtrt_id": s, "psn_no": ann.psn_no, "endtime": "2021-12-25 10:00:00"}),
    )
    .await;
    d.ok(Line::Medical, "benefits", "upload-fees", Channel::Institution,
        serde_json::json!({"mdtrt_id": s, "psn_no": ann.psn_no,
                           "feedetail": [fee_at("3", "2000.00", "2021-12-23 10:00:00"), fee_at("4", "1000.00", "2021-12-25 09:00:00")]})).await;
    let fin = d
        .ok(
            Line::Medical,
            "benefits",
            "settle",
            Channel::Institution,
            settle_body("WH-S2", &s, &ann, "3000.00", false),
        )
        .await;
    // 3000.00 × 85 % = 2550.00 (with a second deductible it would be 1870.00).
    assert_eq!(
        (fin["act_pay_dedc"].as_str(), fin["hifp_pay"].as_str()),
        (Some("0.00"), Some("2550.00")),
        "{fin}"
    );

    assert!(arrears.is_none(), "the arrears payment was never judged");
    let t = &d.tally;
    // Open before the first stop; each order seen refusing what it names.
    assert!(t.count("open") > 0, "{t:?}");
    for order in [
        "wuhan-2021-resident-medical",
        "wuhan-2021-social-arrears-back-payment",
        "wuhan-2021-tax-bank-collection",
        "wuhan-2021-employee-medical",
        "wuhan-2021-social-business",
        "wuhan-2021-medical-settlement",
    ] {
        assert!(
            t.count(&format!("suspended:{order}")) > 0,
            "{order} refused nothing: {t:?}"
        );
    }
    assert!(
        outpatient_ok > 0,
        "no outpatient visit settled in real time: {t:?}"
    );
    // Wuhan suspends: no receipts, nothing held.
    assert!(t.receipts.is_empty(), "{t:?}");

    // Business resumed at 01-01 12:00, as announced on 12-27.
    for (i, p) in [
        enroll(9_000_001, Line::Medical, Channel::Counter, "resident"),
        enroll(9_000_002, Line::Social, Channel::Mobile, "flexible"),
    ]
    .into_iter()
    .enumerate()
    {
        let p = with_id(p);
        let r = wait_for(
            &format!("request {i} answered ok after the lifts"),
            WAIT,
            || async {
                let r = send_command(&d.client, &p.cmd, WAIT).await.ok()?;
                (r.status == ReplyStatus::Ok).then_some(r)
            },
        )
        .await;
        assert!(r.result.is_some());
    }
    // Deadlines extended exactly (DOMAIN.md §8: 停机期间到期的各项期限顺延): December 2021's
    // plain deadline 12-26 (before the last 5 working days) falls in the stops of each line,
    // which overlap into one from 12-14 17:30 (the first order of the line) to the announced
    // resumption 2022-01-01 12:00: 17 days 18.5 hours, added to the deadline, 2022-01-13, for
    // employers and persons alike.
    for (seed, line) in [(9_100_000, Line::Medical), (9_200_000, Line::Social)] {
        let deadlines = assessed_deadlines(&d, seed, line, "2021-12").await;
        let expected: BTreeMap<String, String> = [("employer", "2022-01-13"), ("person", "2022-01-13")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(deadlines, expected, "{line} December 2021");
        eprintln!(
            "wuhan drill: {line} December 2021 deadlines, 2021-12-26 before the freeze, now {deadlines:?}"
        );
    }
    // The tax authority's feed: no order of Wuhan's names data sharing or stops every service
    // of a line, so it flows throughout, in the order published, nothing lost.
    let r = feed
        .judge(None, Span::milliseconds((2000.0 * d.speed()) as i64))
        .await;
    eprintln!(
        "wuhan drill: tax authority's feed {} events, none held, in order, {} received twice",
        r.events, r.duplicates
    );
    feed.stop();
    // Every order announced before, at the start and at the end (its end time, or the lift)
    // to each person of its line, once, and to no one of the other line.
    d.announced_once_per_phase(&ann.phone, Line::Medical).await;
    d.announced_once_per_phase(&bo.phone, Line::Social).await;
    let announced = d.announced_to_no_one_else().await;
    eprintln!(
        "wuhan drill: {announced} announcements received, each by a person or employer of its order's line"
    );
    for l in d.latency_report(&[
        ("before the stops", "2021-12-14T16:00:00", "2021-12-14T17:30:00"),
        ("business stopped", "2021-12-15T17:30:00", "2021-12-22T18:00:00"),
        ("settlement stopped", "2021-12-22T18:00:00", "2021-12-31T23:00:00"),
        ("after the restart", "2021-12-31T23:00:00", "2022-01-02T00:00:00"),
    ]) {
        eprintln!("wuhan drill: {l}");
    }
    eprintln!(
        "wuhan drill: {n} rounds, {outpatient_ok} outpatient settlements, {:?}",
        d.tally.outcomes
    );
    d.stop().await;
}

#[tokio::test]
async fn the_hangzhou_2020_cutover_replayed_across_the_five_services() {
    // 7-17 11:00 → 8-13 06:00 at a day a second.
    let mut d = Drill::start(HANGZHOU, "2020-07-17T11:00:00", 86_400.0, "330100").await;
    let feed = Feed::start(&d.env, &d.clock).await;
    // An employee covered from May 2020 (April paid on 04-20), for the hospital's traffic.
    let ann = d
        .covered_employee(8_300_000, "2020-04", "2020-04-20T10:00:00+08:00")
        .await;
    d.plan().await;
    let (mut settled_in_phase_2, phase_2) = (0u32, (cst("2020-07-24T18:00:00"), cst("2020-08-13T00:00:00")));
    let mut n = 0u32;
    // Persons whose enrollment and contact change were both taken in at the counter.
    let mut pairs: Vec<u32> = Vec::new();
    while d.until("2020-08-13T06:00:00") {
        n += 1;
        d.sample_backlog().await;
        let person = n * 10 + 2;
        let enrolled = d
            .send(&with_id(enroll(
                person,
                Line::Social,
                Channel::Counter,
                "flexible",
            )))
            .await;
        let change = probe(
            Line::Social,
            "enrollment",
            "change-contact",
            Channel::Counter,
            None,
            serde_json::json!({"id_number": id_number(person), "phone": phone(person + 1)}),
        );
        let changed = d.send(&with_id(change)).await;
        if enrolled.status == ReplyStatus::Deferred && changed.status == ReplyStatus::Deferred {
            pairs.push(person);
        }
        let round = [
            enroll(n * 10 + 1, Line::Social, Channel::Online, "flexible"),
            enroll(n * 10 + 3, Line::Medical, Channel::Kiosk, "flexible"),
            probe(
                Line::Medical,
                "enrollment",
                "get-person",
                Channel::Mobile,
                None,
                serde_json::json!({"id_number": id_number(n * 10 + 3)}),
            ),
            payment(n * 10 + 5, Line::Social, Channel::Tax),
        ];
        for p in round {
            d.send(&with_id(p)).await;
        }
        // Real-time settlement stays open through both phases (no order names it).
        let at = d.clock.now();
        if let Some(r) = outpatient(&mut d, n, &ann).await
            && r.status == ReplyStatus::Ok
            && at >= phase_2.0
            && at < phase_2.1
        {
            settled_in_phase_2 += 1;
        }
    }
    let loop_ended = std::time::Instant::now();
    let t = &d.tally;
    assert!(t.count("open") > 0, "{t:?}");
    assert!(
        settled_in_phase_2 > 0,
        "no outpatient visit settled during phase 2: {t:?}"
    );
    for what in [
        "suspended:hangzhou-2020-phase-1",
        "suspended:hangzhou-2020-phase-2",
        "suspended:hangzhou-2020-tax-stop",
        "deferred:hangzhou-2020-phase-2-counter",
    ] {
        assert!(t.count(what) > 0, "never saw {what}: {t:?}");
    }
    assert!(
        !pairs.is_empty(),
        "no enrollment and contact change both taken in: {t:?}"
    );

    // The thaw at 8-13 00:00 processed every held request once, in arrival order: each
    // contact change held behind its enrollment succeeded.
    let pool = d.env.pool("enrollment").await;
    wait_for("the backlog drained", WAIT * 4, || async {
        let db = pool.get().await.ok()?;
        let left: i64 = db
            .query_one("select count(*) from backlog where processed_at is null", &[])
            .await
            .ok()?
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    let drained_in = loop_ended.elapsed();
    let db = pool.get().await.expect("db");
    let rows = db
        .query(
            "select receipt_id::text, reply->>'status', reply from backlog",
            &[],
        )
        .await
        .expect("backlog");
    let held: BTreeMap<String, (String, serde_json::Value)> =
        rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    let social_receipts = d.tally.receipts.len();
    assert!(held.len() >= social_receipts, "receipts not in the backlog");
    for (receipt, cmd) in &d.tally.receipts {
        let (status, reply) = held
            .get(receipt)
            .unwrap_or_else(|| panic!("receipt {receipt} not held"));
        // Every counter request of this drill is a valid enrollment or contact change.
        assert_eq!(status, "ok", "held {} ended {reply}", cmd.routing_key());
    }
    // A repeat after the thaw gets the final outcome, not the receipt.
    let (_, first) = &d.tally.receipts[0];
    let r = send_command(&d.client, first, WAIT).await.expect("a reply");
    assert_eq!(r.status, ReplyStatus::Ok, "{r:?}");
    // Deadlines as the notice moved them: July's declaration closes 08-25 for employers
    // (phase 2's move-to); a flexible worker's July, collected in August, stays 08-15.
    let deadlines = assessed_deadlines(&d, 9_300_000, Line::Medical, "2020-07").await;
    let expected: BTreeMap<String, String> = [("employer", "2020-08-25"), ("person", "2020-08-15")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    assert_eq!(deadlines, expected, "Hangzhou July 2020");
    eprintln!(
        "hangzhou drill: medical July 2020 deadlines (declaration moved to 08-01 → 08-25) {deadlines:?}"
    );
    // The tax authority's feed: held through phase 2 ("every channel suspended, data sharing
    // included") on both lines, released at its end in the order published, nothing lost.
    let r = feed
        .judge(Some(phase_2), Span::milliseconds((2000.0 * d.speed()) as i64))
        .await;
    assert!(r.held > 0, "no event was published during phase 2");
    eprintln!(
        "hangzhou drill: tax authority's feed {} events, {} held through phase 2 and released in order within {} min of its end (drill time), {} received twice",
        r.events,
        r.held,
        r.released_within.map_or(0, |s| s.num_minutes()),
        r.duplicates
    );
    feed.stop();
    // Every order (each names channels, not lines: both lines) announced three times, once each.
    d.announced_once_per_phase(&ann.phone, Line::Medical).await;
    let announced = d.announced_to_no_one_else().await;
    eprintln!(
        "hangzhou drill: {announced} announcements received, each by a person or employer of its order's line"
    );
    for l in d.latency_report(&[
        ("before phase 1", "2020-07-17T10:00:00", "2020-07-17T12:00:00"),
        ("phase 1", "2020-07-17T12:00:00", "2020-07-24T18:00:00"),
        ("phase 2", "2020-07-24T18:00:00", "2020-08-13T00:00:00"),
    ]) {
        eprintln!("hangzhou drill: {l}");
    }
    eprintln!(
        "hangzhou drill: {n} rounds, {} held pairs, {} held requests drained within {:.1} s of the drill's end, {settled_in_phase_2} outpatient settlements in phase 2, {:?}",
        pairs.len(),
        held.len(),
        drained_in.as_secs_f64(),
        d.tally.outcomes
    );
    d.stop().await;
}

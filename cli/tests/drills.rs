//! The agencies' real cutovers replayed in accelerated time against enrollment and collection
//! (issue 7 §5): the timetable is planned with `insurancectl freeze plan`, both services run
//! on one drill clock, and traffic on both lines through several channels runs the whole
//! timetable. The oracle is the timetable itself: every reply must be what
//! `contracts::freeze::decide` says for the moment it was sent (open, `deferred` with the
//! planned resume time, `suspended` with its order, resume time and redirect). A request
//! sent across a boundary (the decision differs between send and reply) is counted, not
//! judged. Every request is answered (nothing lost); held requests are processed at the
//! thaw in arrival order (a change-contact held behind the enrollment it needs succeeds).

mod common;

use chrono::{DateTime, Duration as Span, FixedOffset, Utc};
use common::{HANGZHOU, WUHAN, both_listening, ctl, exit, spawn_in};
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

struct Drill {
    env: TestEnv,
    services: common::Services,
    client: messaging::client::CommandClient,
    clock: Clock,
    orders: Vec<FreezeOrder>,
    tally: Tally,
}

impl Drill {
    /// Both services on a drill clock that shows `origin` (CST) `lead` seconds from now and
    /// runs at `speed`; the timetable planned through the command line before that.
    async fn start(file: &str, origin: &str, speed: f64, region: &str) -> Drill {
        let env = TestEnv::new();
        let origin: DateTime<FixedOffset> = format!("{origin}+08:00").parse().expect("origin");
        // Time to spawn both services and plan the timetable before the drill reaches its
        // origin, on a loaded 2-core machine too.
        let lead = Span::seconds(15);
        let wall_start = Utc::now() + lead;
        let settings = ClockSettings {
            drill_origin: Some(origin),
            drill_wall_start: Some(wall_start.fixed_offset()),
            drill_speed: Some(speed),
        };
        let clock = settings.clock();
        let services = spawn_in(&env, settings, region).await;
        both_listening(&env).await;
        exit(&ctl(&env, &["freeze", "plan", file]).await, 0);
        assert!(clock.now() < origin, "planning took longer than the lead");
        // The traffic starts just before the origin (an hour of drill time), not at once.
        let soon = origin - Span::hours(1);
        wait_for("the drill clock near its origin", WAIT, || async {
            (clock.now() >= soon).then_some(())
        })
        .await;
        let text = std::fs::read_to_string(file).expect("timetable");
        let orders = Timetable::from_yaml(&text).expect("timetable").orders;
        let client = env.client().await;
        Drill {
            env,
            services,
            client,
            clock,
            orders,
            tally: Tally::default(),
        }
    }

    /// Sends `p` and judges the reply against the timetable at the moment it was sent.
    async fn send(&mut self, p: &Probe) -> Reply {
        let req = Request {
            line: p.cmd.line,
            service: &p.cmd.service,
            channel: p.cmd.channel,
            operation: &p.cmd.name,
            payer_kind: p.payer,
        };
        let before = self.clock.now();
        let reply = send_command(&self.client, &p.cmd, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{} lost: {e}", p.cmd.routing_key()));
        let after = self.clock.now();
        let expected = decide(&self.orders, before, &req);
        if expected != decide(&self.orders, after, &req) {
            self.tally.saw("boundary");
            return reply;
        }
        // Within three wall seconds of an order's end the line may still be draining.
        let thawing = self.orders.iter().filter_map(|o| o.ends_at).any(|e| {
            let e = e.with_timezone(&Utc);
            e <= before && before - e < Span::milliseconds((3000.0 * self.speed()) as i64)
        });
        match judge(&expected, &reply, thawing) {
            Ok(what) => self.tally.saw(what),
            Err(why) => panic!(
                "{} ({:?}) at {}: {why}",
                p.cmd.routing_key(),
                p.cmd.channel,
                before.with_timezone(&contracts::freeze::cst())
            ),
        }
        if let Some(r) = &reply.receipt {
            self.tally.receipts.push((r.id.clone(), p.cmd.clone()));
        }
        reply
    }

    fn speed(&self) -> f64 {
        match self.clock {
            Clock::Drill { speed, .. } => speed,
            Clock::Real => 1.0,
        }
    }

    fn until(&self, cst_local: &str) -> bool {
        let t: DateTime<FixedOffset> = format!("{cst_local}+08:00").parse().expect("a time");
        self.clock.now() < t
    }

    async fn stop(self) {
        self.services.stop().await;
        drop(self.env);
    }
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

#[tokio::test]
async fn the_wuhan_2021_cutover_replayed_in_accelerated_time() {
    // 12-14 17:00 → 12-16 02:00 at an hour a second.
    let mut d = Drill::start(WUHAN, "2021-12-14T17:00:00", 3600.0, "420100").await;
    let mut n = 0u32;
    while d.until("2021-12-16T02:00:00") {
        n += 1;
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
        ];
        for p in round {
            d.send(&with_id(p)).await;
        }
    }
    let t = &d.tally;
    // Open before the first stop; each order seen refusing what it names.
    assert!(t.count("open") > 0, "{t:?}");
    for order in [
        "wuhan-2021-resident-medical",
        "wuhan-2021-social-arrears-back-payment",
        "wuhan-2021-tax-bank-collection",
        "wuhan-2021-employee-medical",
        "wuhan-2021-social-business",
    ] {
        assert!(
            t.count(&format!("suspended:{order}")) > 0,
            "{order} refused nothing: {t:?}"
        );
    }
    // Wuhan suspends: no receipts, nothing held.
    assert!(t.receipts.is_empty(), "{t:?}");

    // The agency announces the resumption: the open-ended orders are lifted; business resumes.
    for id in [
        "wuhan-2021-resident-medical",
        "wuhan-2021-social-arrears-back-payment",
        "wuhan-2021-tax-bank-collection",
        "wuhan-2021-employee-medical",
        "wuhan-2021-social-business",
    ] {
        exit(&ctl(&d.env, &["freeze", "lift", id]).await, 0);
    }
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
    // plain deadline 12-26 (before the last 5 working days) falls in the settlement stop
    // 12-22 18:00 → 12-31 23:00 of each line, which took 4 whole days of it: given back from
    // 01-01, past New Year (01-01 … 01-03), 2022-01-04, for employers and persons alike.
    for (seed, line) in [(9_100_000, Line::Medical), (9_200_000, Line::Social)] {
        let deadlines = assessed_deadlines(&d, seed, line, "2021-12").await;
        let expected: BTreeMap<String, String> = [("employer", "2022-01-04"), ("person", "2022-01-04")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(deadlines, expected, "{line} December 2021");
    }
    eprintln!("wuhan drill: {} rounds, {:?}", n, d.tally.outcomes);
    d.stop().await;
}

#[tokio::test]
async fn the_hangzhou_2020_cutover_replayed_in_accelerated_time() {
    // 7-17 11:00 → 8-13 06:00 at a day a second.
    let mut d = Drill::start(HANGZHOU, "2020-07-17T11:00:00", 86_400.0, "330100").await;
    let mut n = 0u32;
    // Persons whose enrollment and contact change were both taken in at the counter.
    let mut pairs: Vec<u32> = Vec::new();
    while d.until("2020-08-13T06:00:00") {
        n += 1;
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
    }
    let t = &d.tally;
    assert!(t.count("open") > 0, "{t:?}");
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
    wait_for("the backlog drained", WAIT, || async {
        let db = pool.get().await.ok()?;
        let left: i64 = db
            .query_one("select count(*) from backlog where processed_at is null", &[])
            .await
            .ok()?
            .get(0);
        (left == 0).then_some(())
    })
    .await;
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
        "hangzhou drill: {n} rounds, {} held pairs, {:?}",
        pairs.len(),
        d.tally.outcomes
    );
    d.stop().await;
}

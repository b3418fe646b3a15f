//! The soak's traffic: a city's agency day on both lines through every channel, as steady
//! mixed load. Each worker draws its next operation from its own seeded generator; an
//! operation is a short flow of commands (registration, wages, enrolment; payment; an
//! outpatient visit; a card from application to activation; queries), each step sent only
//! after the previous one was answered. A step that is held (`deferred`) or refused ends its
//! flow: the held request is processed at the thaw and checked at the end like every other.

use crate::wire::Wire;
use crate::{Servers, Suite};
use contracts::{Channel, Line, Reply, ReplyStatus};
use messaging::client::Command;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use testkit::{credit_code, id_number, phone};
use tokio_util::sync::CancellationToken;

/// How long a flow waits for a step's first reply before giving up on the flow (the command
/// itself is still expected to be answered by the end).
const STEP_WAIT: Duration = Duration::from_secs(90);

/// A designated level-3 hospital of the seeded policy data (V1__benefits.sql).
const H3: &str = "H42010000001";

#[derive(Clone, Debug)]
pub struct Resident {
    pub id: String,
    pub psn_no: String,
}

/// Who the soak has made, so that flows can build on it and the end can check it.
pub struct City {
    pub seed: u64,
    next: AtomicU32,
    pub employers: Mutex<Vec<String>>,
    pub social: Mutex<Vec<String>>,
    carded: Mutex<BTreeSet<String>>,
    pub covered: Mutex<Vec<Resident>>,
    /// Every ID and phone number the soak used (the log scan looks for them).
    pub ids: Mutex<Vec<String>>,
    pub phones: Mutex<Vec<String>>,
    /// Assessments paid (or being paid): at most two payments each, the second only after
    /// a half payment was answered, so that no two payments race for one balance.
    paying: Mutex<BTreeMap<String, u8>>,
    /// The month the soak assesses and pays (last month: paid, it covers this month).
    pub month: String,
    pub paid_at: String,
}

impl City {
    pub fn new(seed: u64) -> City {
        let today = chrono::Utc::now()
            .with_timezone(&contracts::freeze::cst())
            .date_naive();
        let first = today - chrono::Days::new(u64::from(chrono::Datelike::day(&today)));
        let month = first.format("%Y-%m").to_string();
        City {
            seed,
            next: AtomicU32::new(0),
            employers: Mutex::default(),
            social: Mutex::default(),
            carded: Mutex::default(),
            covered: Mutex::default(),
            ids: Mutex::default(),
            phones: Mutex::default(),
            paying: Mutex::default(),
            paid_at: format!("{month}-10T10:00:00+08:00"),
            month,
        }
    }

    /// A fresh person (or employer) number, its ID and phone recorded.
    fn person(&self) -> (u32, String, String) {
        let n = 10_000 + self.next.fetch_add(1, Ordering::Relaxed);
        let (id, ph) = (id_number(n), phone(n));
        self.ids.lock().expect("ids").push(id.clone());
        self.phones.lock().expect("phones").push(ph.clone());
        (n, id, ph)
    }

    pub fn covered_count(&self) -> usize {
        self.covered.lock().expect("covered").len()
    }

    fn msgid(&self) -> String {
        format!(
            "S{}-{}",
            self.seed % 100_000,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn cmd(line: Line, service: &str, name: &str, channel: Channel, body: serde_json::Value) -> Command {
    let mut c = Command::new(line, service, name, &body);
    c.channel = Some(channel);
    c
}

fn ok(r: &Option<Reply>) -> Option<&serde_json::Value> {
    r.as_ref()
        .filter(|r| r.status == ReplyStatus::Ok)
        .and_then(|r| r.result.as_ref())
}

fn is_ok(r: &Option<Reply>) -> bool {
    r.as_ref().is_some_and(|r| r.status == ReplyStatus::Ok)
}

/// A superuser connection to the soak's database (made afresh: Postgres restarts under us).
pub async fn db(servers: &Servers) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&servers.database_url, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no database connection within 10 s"))??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Polls `sql` (one bigint) until it is at least `n`, up to `wait`.
async fn until_count(servers: &Servers, sql: &str, arg: &str, n: i64, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if let Ok(db) = db(servers).await
            && let Ok(row) = db.query_one(sql, &[&arg]).await
            && row.get::<_, i64>(0) >= n
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// An employer with `k` employees from the soak's month; their wages declared. Returns the
/// credit code and the employees (ID, person id) when every step was answered `ok`.
async fn employer(
    wire: &Wire,
    city: &City,
    k: usize,
    channel: Channel,
) -> Option<(String, Vec<(String, String)>)> {
    let (n, _, ph) = city.person();
    let code = credit_code(n);
    let m = Line::Medical;
    let (_, r) = wire
        .request(
            "register-employer",
            &cmd(m, "enrollment", "register-employer", channel,
                serde_json::json!({"credit_code": code, "name": format!("压测单位{n}"), "contact": {"name": "王", "phone": ph}})),
            STEP_WAIT,
        )
        .await;
    if !is_ok(&r) {
        return None;
    }
    city.employers.lock().expect("employers").push(code.clone());
    let mut staff = vec![];
    let mut wages = vec![];
    for i in 0..k {
        let (_, id, ph) = city.person();
        let (_, r) = wire
            .request(
                "enroll-person",
                &cmd(m, "enrollment", "enroll-person", channel,
                    serde_json::json!({"id_number": id, "name": format!("职工{n}-{i}"), "phone": ph, "category": "employee",
                        "insurance_types": ["employee_medical"], "employer_credit_code": code, "effective_month": city.month})),
                STEP_WAIT,
            )
            .await;
        let person = ok(&r)?.get("person_id")?.as_str()?.to_owned();
        wages.push(serde_json::json!({"id_number": id, "previous_year_average": format!("{}.{:02}", 4000 + (n * 37 + i as u32 * 101) % 5000, (n + i as u32) % 100)}));
        staff.push((id, person));
    }
    let year: i32 = city.month[..4].parse().unwrap_or(2026);
    // Collection learns of the employees by enrollment's events, a moment after the replies:
    // an employee it does not know yet is NOT_FOUND, and the agency's system sends the
    // declaration again (a new request) a little later, as it would.
    for _ in 0..20 {
        let (_, r) = wire
            .request(
                "declare-wages",
                &cmd(
                    m,
                    "collection",
                    "declare-wages",
                    channel,
                    serde_json::json!({"employer_credit_code": code, "year": year, "wages": wages}),
                ),
                STEP_WAIT,
            )
            .await;
        match &r {
            Some(r) if r.status == ReplyStatus::Ok => return Some((code, staff)),
            Some(r)
                if r.error
                    .as_ref()
                    .is_some_and(|e| e.code == contracts::ErrorCode::NotFound) =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => return None,
        }
    }
    None
}

/// The covered employees the outpatient traffic uses, made on open lines before any fault:
/// enrolled, their month assessed and paid, benefits sees the month paid.
pub async fn set_up(wire: &Wire, suite: &Suite, city: &City, _rng: &mut StdRng) -> anyhow::Result<()> {
    let s = &suite.servers;
    let mut staffs = vec![];
    for _ in 0..3 {
        let (code, staff) = employer(wire, city, 2, Channel::Counter)
            .await
            .ok_or_else(|| anyhow::anyhow!("set-up: an employer and its employees were not taken"))?;
        for (id, _) in &staff {
            anyhow::ensure!(
                until_count(
                    s,
                    "select count(*) from collection.persons where id_number = $1",
                    id,
                    1,
                    Duration::from_secs(60)
                )
                .await,
                "set-up: collection never learnt of an employee"
            );
        }
        staffs.push((code, staff));
    }
    let (_, r) = wire
        .request(
            "assess-month",
            &cmd(
                Line::Medical,
                "collection",
                "assess-month",
                Channel::Counter,
                serde_json::json!({"month": city.month}),
            ),
            STEP_WAIT,
        )
        .await;
    anyhow::ensure!(is_ok(&r), "set-up: assess-month {}: {r:?}", city.month);
    let db = db(s).await?;
    for (code, staff) in staffs {
        let row = db
            .query_one(
                "select assessment_id::text, (due - paid)::text from collection.assessments where payer_id = $1 and month = $2::text::date",
                &[&code, &format!("{}-01", city.month)],
            )
            .await
            .context_str("set-up: the employer's assessment")?;
        let (assessment, due): (String, String) = (row.get(0), row.get(1));
        city.paying.lock().expect("paying").insert(assessment.clone(), 9);
        let (_, r) = wire
            .request(
                "record-payment",
                &cmd(Line::Medical, "collection", "record-payment", Channel::Tax,
                    serde_json::json!({"assessment_id": assessment, "amount": due, "paid_at": city.paid_at, "tax_receipt_no": format!("SETUP-{}-{code}", city.seed)})),
                STEP_WAIT,
            )
            .await;
        anyhow::ensure!(is_ok(&r), "set-up: record-payment: {r:?}");
        for (id, person) in staff {
            let sql = format!(
                "select count(*) from benefits.paid_months where person_id = $1::text::uuid and month = '{}-01'",
                city.month
            );
            anyhow::ensure!(
                until_count(s, &sql, &person, 1, Duration::from_secs(60)).await,
                "set-up: benefits never saw the month paid"
            );
            city.covered
                .lock()
                .expect("covered")
                .push(Resident { id, psn_no: person });
        }
    }
    Ok(())
}

trait ContextStr<T> {
    fn context_str(self, what: &str) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> ContextStr<T> for Result<T, E> {
    fn context_str(self, what: &str) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{what}: {e}"))
    }
}

const CHANNELS: [Channel; 3] = [Channel::Counter, Channel::Online, Channel::Mobile];

/// One worker of the steady load, until `stop`.
pub async fn worker(
    wire: std::sync::Arc<Wire>,
    suite: std::sync::Arc<Suite>,
    city: std::sync::Arc<City>,
    seed: u64,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.is_cancelled() {
        let pick = rng.random_range(0..100u32);
        let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
        match pick {
            0..20 => social_enrolment(&wire, &city, channel).await,
            20..30 => {
                let k = rng.random_range(1..=3);
                let _ = employer(&wire, &city, k, channel).await;
            }
            30..45 => pay(&wire, &suite, &city, &mut rng).await,
            45..48 => {
                let line = if rng.random_bool(0.5) {
                    Line::Medical
                } else {
                    Line::Social
                };
                wire.request(
                    "assess-month",
                    &cmd(
                        line,
                        "collection",
                        "assess-month",
                        Channel::Counter,
                        serde_json::json!({"month": city.month}),
                    ),
                    STEP_WAIT,
                )
                .await;
            }
            48..63 => outpatient(&wire, &city, &mut rng).await,
            63..71 => card(&wire, &city, &mut rng).await,
            _ => query(&wire, &city, &mut rng).await,
        }
        let pause = Duration::from_millis(rng.random_range(20..200));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => {}
        }
    }
}

async fn social_enrolment(wire: &Wire, city: &City, channel: Channel) {
    let (n, id, ph) = city.person();
    let (sent, r) = wire
        .request(
            "enroll-person",
            &cmd(Line::Social, "enrollment", "enroll-person", channel,
                serde_json::json!({"id_number": id, "name": format!("灵活就业{n}"), "phone": ph, "category": "flexible",
                    "insurance_types": ["pension"], "effective_month": city.month})),
            STEP_WAIT,
        )
        .await;
    // Held at a freeze: it joins the city when the thaw has processed it.
    let done = match r.map(|r| r.status) {
        Some(ReplyStatus::Ok) => true,
        Some(ReplyStatus::Deferred) => wire
            .final_reply(sent, Duration::from_secs(300))
            .await
            .is_some_and(|r| r.status == ReplyStatus::Ok),
        _ => false,
    };
    if done {
        city.social.lock().expect("social").push(id);
    }
}

async fn pay(wire: &Wire, suite: &Suite, city: &City, rng: &mut StdRng) {
    let Ok(db) = db(&suite.servers).await else { return };
    let Ok(rows) = db
        .query(
            "select assessment_id::text, line, (due - paid)::text, round((due - paid) / 2, 2)::text
               from collection.assessments where paid < due and month = $1::text::date order by assessment_id limit 200",
            &[&format!("{}-01", city.month)],
        )
        .await
    else {
        return;
    };
    let open: Vec<_> = {
        let paying = city.paying.lock().expect("paying");
        rows.iter()
            .filter(|r| paying.get(&r.get::<_, String>(0)).is_none_or(|s| *s == 1))
            .collect()
    };
    if open.is_empty() {
        return;
    }
    let row = open[rng.random_range(0..open.len())];
    let (assessment, line, rest, half): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let partial = rng.random_bool(0.3) && half != "0.00";
    {
        let mut paying = city.paying.lock().expect("paying");
        let state = paying.entry(assessment.clone()).or_insert(0);
        if *state > 1 {
            return;
        }
        *state = if partial { 2 } else { 9 };
    }
    let line = if line == "social" {
        Line::Social
    } else {
        Line::Medical
    };
    let receipt = format!("SOAK{}-{}", city.seed % 100_000, city.msgid());
    let (_, r) = wire
        .request(
            "record-payment",
            &cmd(
                line,
                "collection",
                "record-payment",
                Channel::Tax,
                serde_json::json!({"assessment_id": assessment, "amount": if partial { &half } else { &rest },
                    "paid_at": city.paid_at, "tax_receipt_no": receipt}),
            ),
            STEP_WAIT,
        )
        .await;
    if partial && is_ok(&r) {
        city.paying.lock().expect("paying").insert(assessment, 1);
    }
}

fn nhsa_now() -> String {
    chrono::Utc::now()
        .with_timezone(&contracts::freeze::cst())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

async fn outpatient(wire: &Wire, city: &City, rng: &mut StdRng) {
    let who = {
        let c = city.covered.lock().expect("covered");
        if c.is_empty() {
            return;
        }
        c[rng.random_range(0..c.len())].clone()
    };
    let b = |name: &str, body: serde_json::Value| {
        cmd(Line::Medical, "benefits", name, Channel::Institution, body)
    };
    let now = nhsa_now();
    let n = city.msgid();
    let (_, r) = wire
        .request("register-visit", &b("register-visit", serde_json::json!({"msgid": format!("R{n}"), "fixmedins_code": H3, "psn_no": who.psn_no,
            "insutype": "310", "mdtrt_cert_type": "02", "mdtrt_cert_no": who.id, "ipt_otp_no": format!("N{n}"), "begntime": now, "self_pay": false})), STEP_WAIT)
        .await;
    let Some(mdtrt) = ok(&r)
        .and_then(|v| v.get("mdtrt_id"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
    else {
        return;
    };
    let items = rng.random_range(1..=3);
    let mut total = 0u64;
    let mut fees = vec![];
    for i in 0..items {
        let fen = rng.random_range(500..30_000u64);
        total += fen;
        let amount = format!("{}.{:02}", fen / 100, fen % 100);
        fees.push(serde_json::json!({"feedetl_sn": format!("{}", i + 1), "med_list_codg": "XA01", "cnt": "1", "pric": amount,
            "det_item_fee_sumamt": amount, "fee_ocur_time": now}));
    }
    let (_, r) = wire
        .request(
            "upload-fees",
            &b(
                "upload-fees",
                serde_json::json!({"mdtrt_id": mdtrt, "psn_no": who.psn_no, "feedetail": fees}),
            ),
            STEP_WAIT,
        )
        .await;
    if !is_ok(&r) {
        return;
    }
    let acct = if rng.random_bool(0.5) { "1" } else { "0" };
    wire.request("settle", &b("settle", serde_json::json!({"msgid": format!("S{n}"), "fixmedins_code": H3, "mdtrt_id": mdtrt, "psn_no": who.psn_no,
        "mdtrt_cert_type": "02", "mdtrt_cert_no": who.id, "medfee_sumamt": format!("{}.{:02}", total / 100, total % 100),
        "acct_used_flag": acct, "insutype": "310"})), STEP_WAIT)
        .await;
}

async fn card(wire: &Wire, city: &City, rng: &mut StdRng) {
    let id = {
        let social = city.social.lock().expect("social");
        let carded = city.carded.lock().expect("carded");
        let free: Vec<&String> = social.iter().filter(|i| !carded.contains(*i)).collect();
        if free.is_empty() {
            return;
        }
        free[rng.random_range(0..free.len())].clone()
    };
    let c = |name: &str, channel: Channel, body: serde_json::Value| {
        cmd(Line::Common, "card-issuance", name, channel, body)
    };
    let (_, r) = wire
        .request(
            "apply-card",
            &c(
                "apply-card",
                Channel::Counter,
                serde_json::json!({"id_number": id, "bank": "ICBC"}),
            ),
            STEP_WAIT,
        )
        .await;
    let Some(app) = ok(&r)
        .and_then(|v| v.get("application_id"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
    else {
        return; // not known to card issuance yet: another worker tries later
    };
    city.carded.lock().expect("carded").insert(id.clone());
    let mut steps = [
        (
            "review-photo",
            Channel::Counter,
            serde_json::json!({"approved": true}),
        ),
        (
            "record-bank-account",
            Channel::Bank,
            serde_json::json!({"opened": true, "financial_account": format!("6222{}", &id[6..18])}),
        ),
        (
            "record-production",
            Channel::Bank,
            serde_json::json!({"produced": true, "card_number": format!("K{}", &app[app.len().saturating_sub(12)..])}),
        ),
        (
            "record-shipment",
            Channel::Bank,
            serde_json::json!({"tracking_number": "SF1234567890"}),
        ),
        (
            "record-arrival",
            Channel::Bank,
            serde_json::json!({"branch": "工商银行江汉支行"}),
        ),
        (
            "pick-up-card",
            Channel::Bank,
            serde_json::json!({"representative": {"by": "self"}, "documents": ["id_card"], "activate": true}),
        ),
    ];
    for (name, channel, body) in steps.iter_mut() {
        body["id_number"] = serde_json::json!(id);
        if *name != "review-photo" && *name != "pick-up-card" {
            body["application_id"] = serde_json::json!(app);
        }
        let (_, r) = wire
            .request(name_static(name), &c(name, *channel, body.clone()), STEP_WAIT)
            .await;
        if !is_ok(&r) {
            return;
        }
    }
}

fn name_static(name: &str) -> &'static str {
    match name {
        "review-photo" => "review-photo",
        "record-bank-account" => "record-bank-account",
        "record-production" => "record-production",
        "record-shipment" => "record-shipment",
        "record-arrival" => "record-arrival",
        _ => "pick-up-card",
    }
}

async fn query(wire: &Wire, city: &City, rng: &mut StdRng) {
    let social = city.social.lock().expect("social").clone();
    let covered = city.covered.lock().expect("covered").clone();
    match rng.random_range(0..3) {
        0 if !social.is_empty() => {
            let id = &social[rng.random_range(0..social.len())];
            wire.request(
                "get-person",
                &cmd(
                    Line::Social,
                    "enrollment",
                    "get-person",
                    Channel::Kiosk,
                    serde_json::json!({"id_number": id}),
                ),
                STEP_WAIT,
            )
            .await;
        }
        1 if !covered.is_empty() => {
            let who = &covered[rng.random_range(0..covered.len())];
            wire.request(
                "person-info",
                &cmd(
                    Line::Medical,
                    "benefits",
                    "person-info",
                    Channel::Institution,
                    serde_json::json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": who.id}),
                ),
                STEP_WAIT,
            )
            .await;
        }
        _ if !social.is_empty() => {
            let id = &social[rng.random_range(0..social.len())];
            wire.request(
                "get-card-status",
                &cmd(
                    Line::Common,
                    "card-issuance",
                    "get-card-status",
                    Channel::Online,
                    serde_json::json!({"id_number": id}),
                ),
                STEP_WAIT,
            )
            .await;
        }
        _ => {}
    }
}

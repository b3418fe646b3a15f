//! A designated hospital 定点医院 that sends the real NHSA sequence to the benefits service
//! through the broker: lookup (1101), registration (2201), fee upload (2204), pre-settlement
//! (2206), settlement (2207); some settlements are repeated with the same msgid, some
//! cancelled (2208), and some "time out" (the reply is ignored) and are reversed by message id
//! (2601). Everything it does follows from its seed. At the end it reconciles its day with
//! its own books (3201, 3202).

use anyhow::{Context, anyhow, ensure};
use contracts::{Line, Reply};
use messaging::client::{Command, CommandClient};
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::time::Duration;

/// One insured person the hospital sees: psn_no and ID number.
#[derive(Debug, Clone)]
pub struct Patient {
    pub psn_no: String,
    pub id_number: String,
}

#[derive(Debug, Clone)]
pub struct DayConfig {
    pub fixmedins_code: String,
    pub seed: u64,
    pub visits: usize,
    /// When the visits start (ISO 8601 with offset): the day eligibility is judged on.
    pub begntime: String,
    pub patients: Vec<Patient>,
    pub wait: Duration,
}

/// What the day did and what reconciliation answered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DayReport {
    pub settled: usize,
    pub repeated: usize,
    pub cancelled: usize,
    pub reversed: usize,
    pub not_eligible: usize,
    pub medfee_sumamt: Decimal,
    pub fund_pay_sumamt: Decimal,
    pub acct_pay: Decimal,
    /// 3201's `stmt_rslt` (0: balanced).
    pub totals_rslt: String,
    /// 3202's `stmt_rslt`.
    pub details_rslt: String,
}

/// Catalogue codes the seed has (see the benefits migration), with a unit price in fen.
const ITEMS: &[(&str, i64)] = &[("XA01", 1250), ("XB01", 8800), ("XC01", 3000), ("F002", 15000)];

async fn send(client: &CommandClient, name: &str, body: &Value, wait: Duration) -> anyhow::Result<Reply> {
    let cmd = Command::new(Line::Medical, contracts::benefits::SERVICE, name, body);
    client
        .send(&cmd, wait)
        .await
        .with_context(|| format!("{name}: no reply"))
}

fn result(r: Reply, name: &str) -> anyhow::Result<Value> {
    ensure!(r.is_ok(), "{name} was refused: {:?}", r.error);
    r.result.ok_or_else(|| anyhow!("{name}: no result"))
}

fn dec(v: &Value, k: &str) -> anyhow::Result<Decimal> {
    v[k].as_str()
        .ok_or_else(|| anyhow!("no {k}"))?
        .parse()
        .map_err(|e| anyhow!("{k}: {e}"))
}

/// Runs one day at the hospital.
pub async fn run_day(client: &CommandClient, cfg: &DayConfig) -> anyhow::Result<DayReport> {
    ensure!(!cfg.patients.is_empty(), "no patients");
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut report = DayReport::default();
    // The hospital's own books: (setl_id, medfee, fund, acct, cancelled).
    let mut books: Vec<(String, Decimal, Decimal, Decimal, bool)> = Vec::new();
    let mut setl_date = None;
    let code = &cfg.fixmedins_code;
    let stamp: String = cfg
        .begntime
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    for n in 0..cfg.visits {
        let p = &cfg.patients[rng.random_range(0..cfg.patients.len())];
        // An institution's message ids are its own and never reused (NHSA: the institution's
        // code, the time, a sequence): the day's start time is in them, so a second day, or
        // the same seed run again later, never repeats an earlier msgid (`make run` twice
        // found the first run's visit under the second run's registration).
        let msg = |step: &str| format!("{code}-{stamp}-{}-{n:05}-{step}", cfg.seed);
        let info = result(
            send(
                client,
                "person-info",
                &json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": p.id_number, "begntime": cfg.begntime}),
                cfg.wait,
            )
            .await?,
            "person-info",
        )?;
        let eligible = info["insuinfo"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["insutype"] == "310" && i["eligible"] == true));
        let reg = send(
            client,
            "register-visit",
            &json!({"msgid": msg("2201"), "fixmedins_code": code, "psn_no": p.psn_no, "insutype": "310",
                    "mdtrt_cert_type": "02", "mdtrt_cert_no": p.id_number, "ipt_otp_no": format!("OP{n:05}"),
                    "begntime": cfg.begntime, "self_pay": !eligible}),
            cfg.wait,
        )
        .await?;
        if !eligible {
            report.not_eligible += 1;
        }
        let visit = result(reg, "register-visit")?;
        let mdtrt_id = visit["mdtrt_id"].as_str().unwrap_or_default().to_owned();
        let mut lines = Vec::new();
        let mut total = Decimal::ZERO;
        for sn in 0..rng.random_range(1..=3) {
            let (item, fen) = ITEMS[rng.random_range(0..ITEMS.len())];
            let cnt: i64 = rng.random_range(1..=4);
            let pric = Decimal::new(fen, 2);
            let amount = pric * Decimal::from(cnt);
            total += amount;
            lines.push(
                json!({"feedetl_sn": format!("{sn}"), "med_list_codg": item, "cnt": cnt.to_string(),
                              "pric": pric.to_string(), "det_item_fee_sumamt": amount.to_string(),
                              "fee_ocur_time": cfg.begntime}),
            );
        }
        result(
            send(
                client,
                "upload-fees",
                &json!({"mdtrt_id": mdtrt_id, "psn_no": p.psn_no, "feedetail": lines}),
                cfg.wait,
            )
            .await?,
            "upload-fees",
        )?;
        let acct = if rng.random_bool(0.5) { "1" } else { "0" };
        let body = |msgid: String| {
            json!({"msgid": msgid, "fixmedins_code": code, "mdtrt_id": mdtrt_id, "psn_no": p.psn_no,
                   "mdtrt_cert_type": "02", "mdtrt_cert_no": p.id_number, "medfee_sumamt": total.to_string(),
                   "acct_used_flag": acct, "insutype": "310"})
        };
        let pre = result(
            send(client, "pre-settle", &body(msg("2206")), cfg.wait).await?,
            "pre-settle",
        )?;
        let setl_msgid = msg("2207");
        let roll: f64 = rng.random();
        if roll < 0.1 {
            // A timeout: the reply is not read; the hospital reverses by the message id.
            client
                .publish(&Command::new(
                    Line::Medical,
                    contracts::benefits::SERVICE,
                    "settle",
                    &body(setl_msgid.clone()),
                ))
                .await
                .context("settle (timed out)")?;
            let rv = result(
                send(
                    client,
                    "reverse",
                    &json!({"msgid": msg("2601"), "psn_no": p.psn_no, "oinfno": "2207", "omsgid": setl_msgid}),
                    cfg.wait,
                )
                .await?,
                "reverse",
            )?;
            if let Some(id) = rv["setl_id"].as_str() {
                books.push((id.to_owned(), Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, true));
            }
            report.reversed += 1;
            continue;
        }
        let s = result(
            send(client, "settle", &body(setl_msgid.clone()), cfg.wait).await?,
            "settle",
        )?;
        ensure!(
            dec(&s, "fund_pay_sumamt")? == dec(&pre, "fund_pay_sumamt")?,
            "the settlement differs from its pre-settlement"
        );
        let setl_id = s["setl_id"].as_str().unwrap_or_default().to_owned();
        setl_date = s["setl_time"].as_str().map(|t| t[..10].to_owned());
        if roll < 0.2 {
            let again = result(
                send(client, "settle", &body(setl_msgid), cfg.wait).await?,
                "settle",
            )?;
            ensure!(
                again["setl_id"] == s["setl_id"],
                "a repeated msgid got another setl_id"
            );
            report.repeated += 1;
        }
        let (medfee, fund, acct) = (
            dec(&s, "medfee_sumamt")?,
            dec(&s, "fund_pay_sumamt")?,
            dec(&s, "acct_pay")?,
        );
        if roll > 0.9 {
            result(
                send(
                    client,
                    "cancel-settlement",
                    &json!({"msgid": msg("2208"), "setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": p.psn_no}),
                    cfg.wait,
                )
                .await?,
                "cancel-settlement",
            )?;
            books.push((setl_id, medfee, fund, acct, true));
            report.cancelled += 1;
        } else {
            books.push((setl_id, medfee, fund, acct, false));
            report.settled += 1;
            report.medfee_sumamt += medfee;
            report.fund_pay_sumamt += fund;
            report.acct_pay += acct;
        }
    }
    let day = setl_date.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string());
    let t = result(
        send(
            client,
            "reconcile-totals",
            &json!({"fixmedins_code": code, "insutype": "310", "stmt_begndate": day, "stmt_enddate": day,
                    "medfee_sumamt": report.medfee_sumamt.to_string(), "fund_pay_sumamt": report.fund_pay_sumamt.to_string(),
                    "acct_pay": report.acct_pay.to_string(), "fixmedins_setl_cnt": report.settled}),
            cfg.wait,
        )
        .await?,
        "reconcile-totals",
    )?;
    report.totals_rslt = t["stmt_rslt"].as_str().unwrap_or_default().to_owned();
    // Details: a reversed settlement's amounts are the hospital's unknown; it sends what the
    // service booked only for those it has a reply for.
    let details: Vec<Value> = books
        .iter()
        .filter(|b| !(b.4 && b.1.is_zero() && b.2.is_zero()))
        .map(|(id, medfee, fund, acct, cancelled)| {
            json!({"setl_id": id, "medfee_sumamt": medfee.to_string(), "fund_pay_sumamt": fund.to_string(),
                   "acct_pay": acct.to_string(), "refd_setl_flag": if *cancelled { "1" } else { "0" }})
        })
        .collect();
    let d = result(
        send(
            client,
            "reconcile-details",
            &json!({"fixmedins_code": code, "insutype": "310", "stmt_begndate": day, "stmt_enddate": day,
                    "details": details}),
            cfg.wait,
        )
        .await?,
        "reconcile-details",
    )?;
    // Reversed settlements the hospital never saw a reply for show up as `missing-there`,
    // cancelled: the only differences a correct day has.
    let unexplained = d["differences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| !(x["kind"] == "missing-there" && x["ours"]["refd_setl_flag"] == "1"))
                .count()
        })
        .unwrap_or(0);
    report.details_rslt = if unexplained == 0 { "0" } else { "1" }.into();
    Ok(report)
}

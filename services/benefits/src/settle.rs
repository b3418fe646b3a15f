//! The NHSA transactions: person lookup (1101), registration and admission (2201 / 2401),
//! cancel and discharge (2202 / 2402), fee details (2204 / 2301) and their cancel
//! (2205 / 2302), pre-settlement (2206 / 2303), settlement (2207 / 2304), its cancel
//! (2208 / 2305) and reversal by the original message id (2601).
//!
//! The institution's `msgid` is the idempotency key of a registration and of a settlement:
//! a repeat returns what the first one booked. Annual totals are sums over the settlements
//! that stand and the account balance is the sum of its ledger, so a cancel or reversal
//! restores both exactly.

use crate::domain::eligibility::Reason;
use crate::domain::money::{fen, text};
use crate::domain::split::{self, LargeFund, LineSplit};
use crate::filings::{self, CrossRegion};
use crate::handlers::{
    BenefitsHandler, HResult, conflict, cst, insutype, invalid, money, nhsa_code, not_found, ok, reject,
    time, uuid,
};
use crate::store::{self, Person};
use chrono::Datelike;
use contracts::benefits::commands as c;
use contracts::benefits::events as ev;
use contracts::ids::{IdNumber, mask_middle};
use contracts::{ErrorCode, InsuranceType};
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A person of whom card issuance never reported a card (a card made before the card service
/// kept records): admitted, and the reply says so.
pub const CARD_NOTE: &str = "no social security card information from card issuance: \
     admitted without the card check";

/// The card as card issuance last reported it, for the person lookup (1101).
async fn card_note(tx: &Transaction<'_>, id_number: &str) -> Result<String, HandlerError> {
    Ok(
        match tx
            .query_opt(
                "select state, step, in_production from card_status where id_number = $1",
                &[&id_number],
            )
            .await?
        {
            Some(r) => {
                let (state, step, making): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
                let making = if making { ", in production" } else { "" };
                format!("social security card {state} (last step {step}{making})")
            }
            None => CARD_NOTE.to_owned(),
        },
    )
}

/// The social security card at inpatient registration (Baotou): an activated card admits; so
/// does a card whose bank account or production is still under way (the old procedure); any
/// other state is refused with what the person is to do. Returns the note for the reply.
async fn card_check(tx: &Transaction<'_>, id_number: &str) -> Result<String, HandlerError> {
    let Some(r) = tx
        .query_opt(
            "select state, in_production, step, action from card_status where id_number = $1",
            &[&id_number],
        )
        .await?
    else {
        return Ok(CARD_NOTE.to_owned());
    };
    let (state, in_production, step, action): (String, bool, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    if state == "activated" {
        return Ok("social security card activated".to_owned());
    }
    if in_production {
        return Ok(format!(
            "social security card in production ({step}): admitted by the old procedure"
        ));
    }
    Err(reject(
        ErrorCode::NotEligible,
        "mdtrt_cert_no",
        format!(
            "inpatient registration needs an activated social security card; the card is {state} \
             (last step {step}): {action}"
        ),
    ))
}

pub(crate) fn not_eligible(t: InsuranceType, reason: Reason, day: chrono::NaiveDate) -> HandlerError {
    reject(
        ErrorCode::NotEligible,
        "psn_no",
        format!(
            "not covered by {} in {}: {}",
            nhsa_code(t),
            day.format("%Y-%m"),
            reason.as_str()
        ),
    )
}

/// The person a medical certificate names: 01 e-voucher (its content is the `psn_no`), 02 ID
/// card and 03 social security card (both carry the ID number).
async fn resolve(tx: &Transaction<'_>, cert_type: &str, cert_no: &str) -> Result<Person, HandlerError> {
    let found = match cert_type {
        "01" => match cert_no.parse::<Uuid>() {
            Ok(id) => store::person_by_id(tx, id).await?,
            Err(_) => None,
        },
        "02" | "03" => {
            let id = IdNumber::parse(cert_no)
                .map_err(|e| reject(ErrorCode::InvalidIdNumber, "mdtrt_cert_no", e.to_string()))?;
            store::person_by_id_number(tx, id.as_str()).await?
        }
        other => {
            return Err(invalid(
                "mdtrt_cert_type",
                format!(
                    "'{other}' is not a certificate type (01 e-voucher, 02 ID card, 03 social security card)"
                ),
            ));
        }
    };
    found.ok_or_else(|| not_found("mdtrt_cert_no", "no insured person with this certificate"))
}

pub(crate) async fn person_of(tx: &Transaction<'_>, psn_no: &str) -> Result<Person, HandlerError> {
    let id = uuid("psn_no", psn_no)?;
    store::person_by_id(tx, id)
        .await?
        .ok_or_else(|| not_found("psn_no", "no insured person with this psn_no"))
}

async fn check_cert(
    tx: &Transaction<'_>,
    person: &Person,
    cert_type: &str,
    cert_no: &str,
) -> Result<(), HandlerError> {
    let by_cert = resolve(tx, cert_type, cert_no).await?;
    if by_cert.person_id != person.person_id {
        return Err(invalid(
            "mdtrt_cert_no",
            "the certificate does not identify psn_no",
        ));
    }
    Ok(())
}

fn masked(id_number: &str) -> String {
    mask_middle(id_number, 4, 4)
}

pub async fn person_info(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::PersonInfo = msg.decode()?;
    let person = resolve(tx, &cmd.mdtrt_cert_type, &cmd.mdtrt_cert_no).await?;
    let at = match &cmd.begntime {
        Some(s) => time("begntime", s)?,
        None => msg.received_at.with_timezone(&cst()),
    };
    let day = at.with_timezone(&cst()).date_naive();
    let balc = text(store::balance(tx, person.person_id).await?);
    let mut insuinfo = Vec::new();
    for (t, first, end_reason, open) in store::enrolled_types(tx, person.person_id).await? {
        let verdict = store::judge(tx, person.person_id, t, day).await?;
        let stas = if open {
            "1"
        } else if matches!(end_reason.as_deref(), Some("suspended") | Some("removed")) {
            "2"
        } else {
            "4"
        };
        insuinfo.push(c::InsuInfo {
            insutype: nhsa_code(t).to_owned(),
            psn_type: person.category.clone(),
            psn_insu_stas: stas.to_owned(),
            psn_insu_date: first,
            eligible: verdict.is_ok(),
            not_eligible_reason: verdict.err().map(|r| r.as_str().to_owned()),
            month: day.format("%Y-%m").to_string(),
            balc: balc.clone(),
        });
    }
    ok(
        &c::PersonInfoResult {
            baseinfo: c::BaseInfo {
                psn_no: person.person_id.to_string(),
                psn_cert_type: "01".into(),
                certno: masked(&person.id_number),
                psn_name: person.name.clone(),
            },
            insuinfo,
            card_note: card_note(tx, &person.id_number).await?,
        },
        vec![],
    )
}

pub async fn eligibility(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::Eligibility = msg.decode()?;
    let person = person_of(tx, &cmd.psn_no).await?;
    let t = insutype("insutype", &cmd.insutype)?;
    let ym = |field: &str, s: &str| {
        contracts::ids::YearMonth::parse(s)
            .map(|m| m.first_day())
            .map_err(|e| invalid(field, e.to_string()))
    };
    let (from, to) = (ym("from", &cmd.from)?, ym("to", &cmd.to)?);
    if to < from || (to.year() - from.year()) > 10 {
        return Err(invalid(
            "to",
            "'to' must be on or after 'from', at most 10 years apart",
        ));
    }
    let facts = store::facts(tx, person.person_id, t).await?;
    let mut months = Vec::new();
    let mut m = from;
    while m <= to {
        let verdict = crate::domain::eligibility::judge(&facts, t, m);
        months.push(c::MonthEligibility {
            month: m.format("%Y-%m").to_string(),
            eligible: verdict.is_ok(),
            not_eligible_reason: verdict.err().map(|r| r.as_str().to_owned()),
        });
        m = crate::domain::eligibility::add_months(m, 1);
    }
    ok(
        &c::EligibilityResult {
            psn_no: cmd.psn_no,
            insutype: cmd.insutype,
            months,
        },
        vec![],
    )
}

struct Visit {
    mdtrt_id: Uuid,
    person_id: Uuid,
    fixmedins_code: String,
    insutype: String,
    kind: String,
    ipt_otp_no: String,
    begntime: chrono::DateTime<chrono::FixedOffset>,
    status: String,
    self_pay: bool,
    note: Option<String>,
    dise_codg: Option<String>,
}

impl Visit {
    fn view(&self) -> c::VisitResult {
        c::VisitResult {
            mdtrt_id: self.mdtrt_id.to_string(),
            psn_no: self.person_id.to_string(),
            ipt_otp_no: self.ipt_otp_no.clone(),
            kind: self.kind.clone(),
            status: self.status.clone(),
            self_pay: self.self_pay,
            note: self.note.clone(),
        }
    }

    fn day(&self) -> chrono::NaiveDate {
        self.begntime.with_timezone(&cst()).date_naive()
    }
}

const VISIT: &str = "select mdtrt_id, person_id, fixmedins_code, insutype, kind, ipt_otp_no, begntime, status, self_pay, note,
                             dise_codg from visits";

fn visit_row(r: &tokio_postgres::Row) -> Visit {
    let begntime: chrono::DateTime<chrono::Utc> = r.get(6);
    Visit {
        mdtrt_id: r.get(0),
        person_id: r.get(1),
        fixmedins_code: r.get(2),
        insutype: r.get(3),
        kind: r.get(4),
        ipt_otp_no: r.get(5),
        begntime: begntime.with_timezone(&cst()),
        status: r.get(7),
        self_pay: r.get(8),
        note: r.get(9),
        dise_codg: r.get(10),
    }
}

/// The visit `mdtrt_id` of `psn_no`, locked for a change.
async fn visit(tx: &Transaction<'_>, mdtrt_id: &str, psn_no: &str) -> Result<Visit, HandlerError> {
    let id = uuid("mdtrt_id", mdtrt_id)?;
    let row = tx
        .query_opt(&format!("{VISIT} where mdtrt_id = $1 for update"), &[&id])
        .await?
        .ok_or_else(|| not_found("mdtrt_id", "no such visit"))?;
    let v = visit_row(&row);
    if v.person_id.to_string() != psn_no {
        return Err(not_found("mdtrt_id", "no such visit of psn_no"));
    }
    Ok(v)
}

pub async fn register(tx: &Transaction<'_>, msg: &Incoming, kind: &str) -> HResult {
    let cmd: c::RegisterVisit = msg.decode()?;
    if let Some(r) = tx
        .query_opt(&format!("{VISIT} where msgid = $1"), &[&cmd.msgid])
        .await?
    {
        return ok(&visit_row(&r).view(), vec![]);
    }
    if cmd.msgid.trim().is_empty() {
        return Err(invalid("msgid", "msgid is required"));
    }
    let person = person_of(tx, &cmd.psn_no).await?;
    check_cert(tx, &person, &cmd.mdtrt_cert_type, &cmd.mdtrt_cert_no).await?;
    let t = insutype("insutype", &cmd.insutype)?;
    if t == InsuranceType::LargeAmountMedical {
        return Err(invalid("insutype", "330 is settled with 310, not on its own"));
    }
    tx.query_opt(
        "select 1 from institutions where fixmedins_code = $1",
        &[&cmd.fixmedins_code],
    )
    .await?
    .ok_or_else(|| not_found("fixmedins_code", "not a designated institution"))?;
    let begntime = time("begntime", &cmd.begntime)?;
    let day = begntime.with_timezone(&cst()).date_naive();
    let mut notes = Vec::new();
    let self_pay = match store::judge(tx, person.person_id, t, day).await? {
        Ok(()) => false,
        Err(reason) if cmd.self_pay => {
            notes.push(format!(
                "registered self-paid: not covered by {} in {} ({})",
                nhsa_code(t),
                day.format("%Y-%m"),
                reason.as_str()
            ));
            true
        }
        Err(reason) => return Err(not_eligible(t, reason, day)),
    };
    if kind == "inpatient" {
        notes.push(card_check(tx, &person.id_number).await?);
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    let status = if kind == "inpatient" {
        "admitted"
    } else {
        "registered"
    };
    let mdtrt_id = Uuid::now_v7();
    tx.execute(
        "insert into visits (mdtrt_id, msgid, fixmedins_code, person_id, insutype, kind, ipt_otp_no, begntime,
                             status, self_pay, note, dise_codg)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &mdtrt_id,
            &cmd.msgid,
            &cmd.fixmedins_code,
            &person.person_id,
            &cmd.insutype,
            &kind,
            &cmd.ipt_otp_no,
            &begntime,
            &status,
            &self_pay,
            &note,
            &cmd.dise_codg,
        ],
    )
    .await?;
    let v = Visit {
        mdtrt_id,
        person_id: person.person_id,
        fixmedins_code: cmd.fixmedins_code,
        insutype: cmd.insutype,
        kind: kind.to_owned(),
        ipt_otp_no: cmd.ipt_otp_no,
        begntime,
        status: status.to_owned(),
        self_pay,
        note,
        dise_codg: cmd.dise_codg,
    };
    ok(&v.view(), vec![])
}

/// A settlement of the visit that stands (an interim one, or the final one).
async fn standing_settlement(tx: &Transaction<'_>, mdtrt_id: Uuid) -> Result<Option<Uuid>, HandlerError> {
    Ok(tx
        .query_opt(
            "select setl_id from settlements where mdtrt_id = $1 and status = 'settled'
             order by mid_setl limit 1",
            &[&mdtrt_id],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The visit's final settlement, if it stands (interim settlements 中途结算 do not count).
async fn final_settlement(tx: &Transaction<'_>, mdtrt_id: Uuid) -> Result<Option<Uuid>, HandlerError> {
    Ok(tx
        .query_opt(
            "select setl_id from settlements where mdtrt_id = $1 and status = 'settled' and not mid_setl",
            &[&mdtrt_id],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The deductible the stay's standing settlements already bore: an inpatient stay bears its
/// deductible once, whatever the number of settlements (an interim one before a settlement
/// stop and the re-entered rest after it: no second deductible, Wuhan 2021).
async fn stay_deductible_borne(tx: &Transaction<'_>, mdtrt_id: Uuid) -> Result<Decimal, HandlerError> {
    Ok(tx
        .query_one(
            "select coalesce(sum(act_pay_dedc), 0) from settlements where mdtrt_id = $1 and status = 'settled'",
            &[&mdtrt_id],
        )
        .await?
        .get(0))
}

pub async fn cancel_visit(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::CancelVisit = msg.decode()?;
    let mut v = visit(tx, &cmd.mdtrt_id, &cmd.psn_no).await?;
    if v.status != "cancelled" {
        if let Some(s) = standing_settlement(tx, v.mdtrt_id).await? {
            return Err(conflict(
                "mdtrt_id",
                format!("settled as {s}: cancel the settlement first"),
            ));
        }
        tx.execute(
            "update visits set status = 'cancelled', updated_at = now() where mdtrt_id = $1",
            &[&v.mdtrt_id],
        )
        .await?;
        tx.execute(
            "update fee_lines set cancelled_at = now() where mdtrt_id = $1 and cancelled_at is null",
            &[&v.mdtrt_id],
        )
        .await?;
        v.status = "cancelled".into();
    }
    ok(&v.view(), vec![])
}

pub async fn discharge(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::Discharge = msg.decode()?;
    let mut v = visit(tx, &cmd.mdtrt_id, &cmd.psn_no).await?;
    let endtime = time("endtime", &cmd.endtime)?;
    if v.kind != "inpatient" {
        return Err(conflict("mdtrt_id", "an outpatient visit is not discharged"));
    }
    match v.status.as_str() {
        "admitted" => {
            if endtime < v.begntime {
                return Err(invalid("endtime", "discharge before admission"));
            }
            tx.execute(
                "update visits set status = 'discharged', endtime = $2, dise_codg = coalesce($3, dise_codg),
                     updated_at = now() where mdtrt_id = $1",
                &[&v.mdtrt_id, &endtime, &cmd.dscg_maindiag_code],
            )
            .await?;
            v.status = "discharged".into();
        }
        "discharged" => {}
        _ => return Err(conflict("mdtrt_id", "the admission was cancelled")),
    }
    ok(&v.view(), vec![])
}

pub(crate) struct Line {
    pub feedetl_sn: String,
    pub med_list_codg: String,
    pub cnt: Decimal,
    pub pric: Decimal,
    pub amount: Decimal,
    pub split: LineSplit,
    pub selfpay_prop: Decimal,
    pub chrgitm_lv: String,
}

impl Line {
    pub fn result(&self) -> c::FeeResult {
        c::FeeResult {
            feedetl_sn: self.feedetl_sn.clone(),
            det_item_fee_sumamt: text(self.amount),
            fulamt_ownpay_amt: text(self.split.fulamt_ownpay_amt),
            overlmt_amt: text(self.split.overlmt_amt),
            preselfpay_amt: text(self.split.preselfpay_amt),
            inscp_scp_amt: text(self.split.inscp_scp_amt),
            selfpay_prop: self.selfpay_prop.to_string(),
            chrgitm_lv: self.chrgitm_lv.clone(),
        }
    }
}

const LINE: &str =
    "select feedetl_sn, med_list_codg, cnt, pric, det_item_fee_sumamt, fulamt_ownpay_amt, overlmt_amt,
                           preselfpay_amt, inscp_scp_amt, selfpay_prop, chrgitm_lv from fee_lines";

fn line_row(r: &tokio_postgres::Row) -> Line {
    Line {
        feedetl_sn: r.get(0),
        med_list_codg: r.get(1),
        cnt: r.get(2),
        pric: r.get(3),
        amount: r.get(4),
        split: LineSplit {
            fulamt_ownpay_amt: r.get(5),
            overlmt_amt: r.get(6),
            preselfpay_amt: r.get(7),
            inscp_scp_amt: r.get(8),
        },
        selfpay_prop: r.get(9),
        chrgitm_lv: r.get(10),
    }
}

/// A fee line's count, unit price and amount, checked (`feedetail[i]` names the field).
pub(crate) fn fee_amounts(i: usize, f: &c::FeeDetail) -> Result<(Decimal, Decimal, Decimal), HandlerError> {
    let field = |name: &str| format!("feedetail[{i}].{name}");
    let cnt = crate::domain::money::parse(&f.cnt, 4).map_err(|e| invalid(&field("cnt"), e.to_string()))?;
    let pric = crate::domain::money::parse(&f.pric, 6).map_err(|e| invalid(&field("pric"), e.to_string()))?;
    let amount = money(&field("det_item_fee_sumamt"), &f.det_item_fee_sumamt)?;
    if cnt.is_zero() {
        return Err(invalid(&field("cnt"), "a quantity must be positive"));
    }
    if fen(cnt * pric) != amount {
        return Err(invalid(
            &field("det_item_fee_sumamt"),
            format!(
                "{} × {} = {}, not {}",
                f.cnt,
                f.pric,
                text(cnt * pric),
                f.det_item_fee_sumamt
            ),
        ));
    }
    Ok((cnt, pric, amount))
}

/// A checked fee line split by the catalogue.
pub(crate) async fn split_fee_line(
    tx: &Transaction<'_>,
    f: &c::FeeDetail,
    cnt: Decimal,
    pric: Decimal,
    amount: Decimal,
) -> Result<Line, HandlerError> {
    let item = store::catalogue(tx, &f.med_list_codg).await?;
    let split = split::split_line(cnt, pric, amount, item.as_ref().map(|(i, _)| i));
    let (selfpay_prop, chrgitm_lv) = match &item {
        Some((i, lv)) if i.in_scope => (i.selfpay_prop, lv.clone()),
        _ => (Decimal::ONE, "3".to_owned()),
    };
    Ok(Line {
        feedetl_sn: f.feedetl_sn.clone(),
        med_list_codg: f.med_list_codg.clone(),
        cnt,
        pric,
        amount,
        split,
        selfpay_prop,
        chrgitm_lv,
    })
}

pub async fn upload_fees(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::UploadFees = msg.decode()?;
    let v = visit(tx, &cmd.mdtrt_id, &cmd.psn_no).await?;
    if v.status == "cancelled" {
        return Err(conflict("mdtrt_id", "the visit was cancelled"));
    }
    if cmd.feedetail.is_empty() {
        return Err(invalid("feedetail", "at least one fee line is required"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, f) in cmd.feedetail.iter().enumerate() {
        let field = |name: &str| format!("feedetail[{i}].{name}");
        if f.feedetl_sn.trim().is_empty() || !seen.insert(f.feedetl_sn.clone()) {
            return Err(invalid(&field("feedetl_sn"), "empty or repeated in this upload"));
        }
        let (cnt, pric, amount) = fee_amounts(i, f)?;
        // Fees re-entered after a settlement stop 补录 carry their real times.
        time(&field("fee_ocur_time"), &f.fee_ocur_time)?;
        if let Some(r) = tx
            .query_opt(
                &format!("{LINE} where mdtrt_id = $1 and feedetl_sn = $2 and cancelled_at is null"),
                &[&v.mdtrt_id, &f.feedetl_sn],
            )
            .await?
        {
            let existing = line_row(&r);
            if existing.med_list_codg == f.med_list_codg
                && existing.cnt == cnt
                && existing.pric == pric
                && existing.amount == amount
            {
                out.push(existing.result());
                continue;
            }
            return Err(conflict(
                &field("feedetl_sn"),
                "a different line with this feedetl_sn was uploaded; cancel it first",
            ));
        }
        let line = split_fee_line(tx, f, cnt, pric, amount).await?;
        tx.execute(
            "insert into fee_lines (mdtrt_id, feedetl_sn, med_list_codg, cnt, pric, det_item_fee_sumamt,
                 fulamt_ownpay_amt, overlmt_amt, preselfpay_amt, inscp_scp_amt, selfpay_prop, chrgitm_lv, fee_ocur_time)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &v.mdtrt_id,
                &line.feedetl_sn,
                &line.med_list_codg,
                &line.cnt,
                &line.pric,
                &line.amount,
                &line.split.fulamt_ownpay_amt,
                &line.split.overlmt_amt,
                &line.split.preselfpay_amt,
                &line.split.inscp_scp_amt,
                &line.selfpay_prop,
                &line.chrgitm_lv,
                &f.fee_ocur_time,
            ],
        )
        .await?;
        out.push(line.result());
    }
    ok(
        &c::UploadFeesResult {
            mdtrt_id: cmd.mdtrt_id,
            result: out,
        },
        vec![],
    )
}

pub async fn cancel_fees(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::CancelFees = msg.decode()?;
    let v = visit(tx, &cmd.mdtrt_id, &cmd.psn_no).await?;
    let all = cmd.feedetl_sn.iter().any(|s| s == "0000");
    let mut cancelled = Vec::new();
    if all {
        if let Some(s) = standing_settlement(tx, v.mdtrt_id).await? {
            return Err(conflict(
                "feedetl_sn",
                format!("settled as {s}: cancel the settlement first"),
            ));
        }
        for r in tx
            .query(
                "update fee_lines set cancelled_at = now() where mdtrt_id = $1 and cancelled_at is null
                 returning feedetl_sn",
                &[&v.mdtrt_id],
            )
            .await?
        {
            cancelled.push(r.get(0));
        }
    } else {
        if cmd.feedetl_sn.is_empty() {
            return Err(invalid("feedetl_sn", "name the lines to cancel, or 0000 for all"));
        }
        for sn in &cmd.feedetl_sn {
            let row = tx
                .query_opt(
                    "select setl_id from fee_lines where mdtrt_id = $1 and feedetl_sn = $2 and cancelled_at is null",
                    &[&v.mdtrt_id, sn],
                )
                .await?
                .ok_or_else(|| not_found("feedetl_sn", format!("no line {sn} to cancel")))?;
            if row.get::<_, Option<Uuid>>(0).is_some() {
                return Err(conflict(
                    "feedetl_sn",
                    format!("line {sn} is settled: cancel the settlement first"),
                ));
            }
            tx.execute(
                "update fee_lines set cancelled_at = now() where mdtrt_id = $1 and feedetl_sn = $2 and cancelled_at is null",
                &[&v.mdtrt_id, sn],
            )
            .await?;
            cancelled.push(sn.clone());
        }
    }
    ok(
        &c::CancelFeesResult {
            mdtrt_id: cmd.mdtrt_id,
            cancelled,
        },
        vec![],
    )
}

/// `pre-settle` (`book` false: the whole computation, nothing booked) and `settle`.
/// What the year leaves of the policy for one more settlement or claim of `kind`: the
/// deductible (outpatient: the year's, minus what settlements and approved claims bore;
/// inpatient: the admission's), the pooled fund's cap, and the fund above it with its ratio
/// and what is left of its cap.
pub(crate) struct YearTerms {
    pub deductible_left: Decimal,
    pub pool_cap_left: Decimal,
    pub large: Option<(LargeFund, Decimal, Decimal)>,
}

pub(crate) async fn year_terms(
    tx: &Transaction<'_>,
    person: Uuid,
    t: InsuranceType,
    insutype: &str,
    kind: &str,
    policy: &store::Policy,
    day: chrono::NaiveDate,
) -> Result<YearTerms, HandlerError> {
    let (ded_used, pool_used, large_used) = store::year_used(tx, person, insutype, day.year()).await?;
    let deductible_left = if kind == "outpatient" {
        policy.outpatient_deductible - ded_used
    } else {
        policy.deductible
    };
    let large = match t {
        InsuranceType::ResidentMedical => Some(LargeFund::Hifmi),
        _ => store::judge(tx, person, InsuranceType::LargeAmountMedical, day)
            .await?
            .is_ok()
            .then_some(LargeFund::Hifob),
    }
    .map(|f| (f, policy.large_ratio, policy.large_cap - large_used));
    Ok(YearTerms {
        deductible_left,
        pool_cap_left: policy.annual_cap - pool_used,
        large,
    })
}

/// What filings 备案 change in a settlement (issue 10 §1).
struct Filed {
    terms: filings::Terms,
    /// The cross-region filing and its reduction of the ratio (or the unfiled reduction).
    cross_region: Option<Uuid>,
    reduction: Decimal,
    /// An approved chronic-disease filing for the visit's diagnosis.
    chronic: Option<Uuid>,
    /// Filed special drugs among the visit's lines: (code, filing).
    special: Vec<(String, Uuid)>,
}

impl Filed {
    /// The pooled fund's ratio for the visit's ordinary lines.
    fn ratio(&self, policy_ratio: Decimal) -> Decimal {
        let base = if self.chronic.is_some() {
            self.terms.chronic_ratio
        } else {
            policy_ratio
        };
        filings::reduced(base, self.reduction)
    }

    fn special_ratio(&self) -> Decimal {
        filings::reduced(self.terms.special_drug_ratio, self.reduction)
    }

    fn ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.cross_region.into_iter().chain(self.chronic).collect();
        for (_, id) in &self.special {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids
    }
}

/// The filings that apply to a settlement of `v` at an institution of `region`: refuses care
/// elsewhere without a filing (when policy says so), a chronic-disease settlement not on the
/// social security card, or with more drugs than policy allows per visit. A self-paid visit
/// and one an override decides keep their terms.
#[allow(clippy::too_many_arguments)]
async fn filed_terms(
    tx: &Transaction<'_>,
    cmd: &c::Settle,
    v: &Visit,
    person: &Person,
    region: &str,
    lines: &[Line],
    day: chrono::NaiveDate,
    overridden: bool,
) -> Result<Filed, HandlerError> {
    let mut filed = Filed {
        terms: filings::terms(tx, &v.insutype).await?,
        cross_region: None,
        reduction: Decimal::ZERO,
        chronic: None,
        special: vec![],
    };
    if v.self_pay || overridden {
        return Ok(filed);
    }
    match filings::cross_region(tx, person.person_id, region, day).await? {
        CrossRegion::Home => {}
        CrossRegion::Filed { filing_id, reduction } => {
            filed.cross_region = Some(filing_id);
            filed.reduction = reduction;
        }
        CrossRegion::Unfiled { region } => {
            if !filed.terms.unfiled_realtime {
                return Err(filings::unfiled_refusal(&region, day, &filed.terms));
            }
            filed.reduction = filed.terms.unfiled_ratio_reduction;
        }
    }
    if v.kind == "outpatient"
        && let Some(id) = filings::chronic(tx, person.person_id, v.dise_codg.as_deref(), day).await?
    {
        if cmd.mdtrt_cert_type != "03" {
            return Err(invalid(
                "mdtrt_cert_type",
                format!(
                    "a settlement under the chronic-disease filing {id} is made on the social security card alone: \
                     mdtrt_cert_type 03, not {}",
                    cmd.mdtrt_cert_type
                ),
            ));
        }
        let drugs: Vec<(String, Decimal)> = lines.iter().map(|l| (l.med_list_codg.clone(), l.cnt)).collect();
        let days = filings::drug_days(tx, &drugs).await?;
        let max = filed.terms.chronic_max_drug_days;
        if days > Decimal::from(max) {
            return Err(conflict(
                "feedetail",
                format!(
                    "the chronic-disease filing {id} allows up to {max} days of drugs per visit; the lines give {} \
                     days: cancel lines (cancel-fees) and settle the rest",
                    days.normalize()
                ),
            ));
        }
        filed.chronic = Some(id);
    }
    let special = filings::special_drugs(tx, person.person_id, &v.fixmedins_code, day).await?;
    filed.special = special
        .into_iter()
        .filter(|(code, _)| lines.iter().any(|l| l.med_list_codg == *code))
        .collect();
    Ok(filed)
}

pub async fn settle(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming, book: bool) -> HResult {
    let cmd: c::Settle = msg.decode()?;
    if book {
        if let Some(r) = tx
            .query_opt("select result from settlements where msgid = $1", &[&cmd.msgid])
            .await?
        {
            // A repeat: the same setl_id and split, whatever happened since.
            let stored: serde_json::Value = r.get(0);
            return Ok(messaging::Handled {
                result: Some(stored),
                ..Default::default()
            });
        }
        if cmd.msgid.trim().is_empty() {
            return Err(invalid("msgid", "msgid is required"));
        }
        if tx
            .query_opt("select 1 from reversed_msgids where omsgid = $1", &[&cmd.msgid])
            .await?
            .is_some()
        {
            return Err(conflict(
                "msgid",
                "this msgid was reversed (2601) before it arrived",
            ));
        }
    }
    let v = visit(tx, &cmd.mdtrt_id, &cmd.psn_no).await?;
    let person = person_of(tx, &cmd.psn_no).await?;
    check_cert(tx, &person, &cmd.mdtrt_cert_type, &cmd.mdtrt_cert_no).await?;
    let t = insutype("insutype", &cmd.insutype)?;
    if cmd.insutype != v.insutype {
        return Err(invalid(
            "insutype",
            format!("the visit was registered under {}", v.insutype),
        ));
    }
    if cmd.fixmedins_code != v.fixmedins_code {
        return Err(invalid("fixmedins_code", "the visit is at another institution"));
    }
    let use_account = match cmd.acct_used_flag.as_str() {
        "1" => true,
        "0" => false,
        _ => return Err(invalid("acct_used_flag", "0 or 1")),
    };
    let interim = match cmd.mid_setl_flag.as_deref() {
        Some("1") => true,
        Some("0") | None => false,
        Some(_) => return Err(invalid("mid_setl_flag", "0 or 1")),
    };
    match v.status.as_str() {
        "cancelled" => return Err(conflict("mdtrt_id", "the visit was cancelled")),
        "admitted" if !interim => {
            return Err(conflict(
                "mdtrt_id",
                "discharge (2402) before the inpatient settlement, or settle what was uploaded so far \
                 as an interim settlement (mid_setl_flag 1)",
            ));
        }
        "admitted" => {}
        _ if interim => {
            return Err(invalid(
                "mid_setl_flag",
                "an interim settlement is for an inpatient still in hospital",
            ));
        }
        _ => {}
    }
    if let Some(s) = final_settlement(tx, v.mdtrt_id).await? {
        return Err(conflict("mdtrt_id", format!("already settled as {s}")));
    }
    let lines: Vec<Line> = tx
        .query(
            &format!(
                "{LINE} where mdtrt_id = $1 and cancelled_at is null and setl_id is null order by line_id"
            ),
            &[&v.mdtrt_id],
        )
        .await?
        .iter()
        .map(line_row)
        .collect();
    if lines.is_empty() {
        return Err(conflict("mdtrt_id", "no fee lines uploaded for this visit"));
    }
    let theirs = money("medfee_sumamt", &cmd.medfee_sumamt)?;
    let medfee: Decimal = lines.iter().map(|l| l.amount).sum();
    if theirs != medfee {
        return Err(conflict(
            "medfee_sumamt",
            format!(
                "the uploaded lines add up to {}, not {}",
                text(medfee),
                text(theirs)
            ),
        ));
    }
    let mut sums = LineSplit::default();
    for l in &lines {
        sums += l.split;
    }
    let day = v.day();
    if !v.self_pay
        && let Err(reason) = store::judge(tx, person.person_id, t, day).await?
    {
        return Err(not_eligible(t, reason, day));
    }
    let (hosp_lv, region) = filings::institution(tx, &v.fixmedins_code)
        .await?
        .ok_or_else(|| not_found("fixmedins_code", "not a designated institution"))?;
    let policy = store::policy(tx, &v.insutype, &v.kind, &hosp_lv, day)
        .await?
        .ok_or_else(|| {
            not_found(
                "insutype",
                format!("no benefit policy in force for {} on {day}", v.insutype),
            )
        })?;
    let overriding =
        store::policy_override(tx, v.dise_codg.as_deref(), day, &person.id_number, v.self_pay).await?;
    let filed = filed_terms(tx, &cmd, &v, &person, &region, &lines, day, overriding.is_some()).await?;
    // Under an override that leaves the patient nothing to pay, no account is drawn on.
    let use_account = use_account && !overriding.as_ref().is_some_and(|o| o.finance_pays_rest);
    let grantor = if use_account && policy.account_allowed && !v.self_pay {
        store::mutual_aid_grantor(tx, person.person_id).await?
    } else {
        None
    };
    let mut locked = vec![person.person_id];
    locked.extend(grantor);
    store::lock_persons(tx, &locked).await?;
    let year = day.year();
    let mut terms = year_terms(tx, person.person_id, t, &v.insutype, &v.kind, &policy, day).await?;
    if v.kind == "inpatient" {
        let borne = stay_deductible_borne(tx, v.mdtrt_id).await?;
        terms.deductible_left = (terms.deductible_left - borne).max(Decimal::ZERO);
    }
    if filed.chronic.is_some() {
        // The chronic-disease deductible is the year's own, apart from the ordinary one.
        let used = filings::chronic_deductible_used(tx, person.person_id, &v.insutype, year).await?;
        terms.deductible_left = (filed.terms.chronic_deductible - used).max(Decimal::ZERO);
    }
    let own_balance = store::balance(tx, person.person_id).await?;
    let account = if use_account && policy.account_allowed && !v.self_pay {
        own_balance
    } else {
        Decimal::ZERO
    };
    let mutual_aid = match grantor {
        Some(g) => store::balance(tx, g).await?,
        None => Decimal::ZERO,
    };
    let ratio = filed.ratio(policy.ratio);
    // The ordinary lines first (they bear the deductible), then a filed special drug's lines
    // at its own ratio, with what the first part left of the deductible, caps and accounts.
    let (mut ordinary, mut special) = (
        (Decimal::ZERO, LineSplit::default()),
        (Decimal::ZERO, LineSplit::default()),
    );
    for l in &lines {
        let part = if filed.special.iter().any(|(code, _)| *code == l.med_list_codg) {
            &mut special
        } else {
            &mut ordinary
        };
        part.0 += l.amount;
        part.1 += l.split;
    }
    let first = split::split(&split::Input {
        medfee_sumamt: ordinary.0,
        lines: ordinary.1,
        deductible_left: terms.deductible_left,
        ratio,
        pool_cap_left: terms.pool_cap_left,
        large: terms.large,
        account,
        mutual_aid,
        self_pay: v.self_pay,
    });
    let mut s = if special.0.is_zero() {
        first
    } else {
        let second = split::split(&split::Input {
            medfee_sumamt: special.0,
            lines: special.1,
            deductible_left: terms.deductible_left - first.act_pay_dedc,
            ratio: filed.special_ratio(),
            pool_cap_left: terms.pool_cap_left - first.hifp_pay,
            large: terms
                .large
                .map(|(f, r, left)| (f, r, left - first.hifob_pay - first.hifmi_pay)),
            account: account - first.acct_pay,
            mutual_aid: mutual_aid - first.acct_mulaid_pay,
            self_pay: v.self_pay,
        });
        split::combine(first, second)
    };
    let filing_ids = filed.ids();
    let oth_pay = match &overriding {
        Some(o) if o.finance_pays_rest => split::finance_pays_rest(&mut s),
        _ => Decimal::ZERO,
    };
    let rule = match &overriding {
        Some(o) => format!("override:{}", o.id),
        None => format!("policy:{}", policy.policy_id),
    };
    let setl_id = book.then(Uuid::now_v7);
    let setl_time = msg.received_at.with_timezone(&cst());
    let info = c::SetlInfo {
        setl_id: setl_id.map(|s| s.to_string()),
        mdtrt_id: v.mdtrt_id.to_string(),
        psn_no: person.person_id.to_string(),
        insutype: v.insutype.clone(),
        setl_time: book.then_some(setl_time),
        medfee_sumamt: text(medfee),
        fulamt_ownpay_amt: text(sums.fulamt_ownpay_amt),
        overlmt_selfpay: text(sums.overlmt_amt),
        preselfpay_amt: text(sums.preselfpay_amt),
        inscp_scp_amt: text(sums.inscp_scp_amt),
        act_pay_dedc: text(s.act_pay_dedc),
        hifp_pay: text(s.hifp_pay),
        pool_prop_selfpay: if v.self_pay {
            "0".into()
        } else {
            ratio.normalize().to_string()
        },
        hifob_pay: text(s.hifob_pay),
        hifmi_pay: text(s.hifmi_pay),
        fund_pay_sumamt: text(s.fund_pay_sumamt),
        acct_pay: text(s.acct_pay),
        acct_mulaid_pay: text(s.acct_mulaid_pay),
        psn_cash_pay: text(s.psn_cash_pay),
        balc: text(own_balance - s.acct_pay),
        self_pay: v.self_pay,
        mid_setl_flag: interim,
        oth_pay: text(oth_pay),
        rule: rule.clone(),
        filings: filings::names(&filing_ids),
    };
    let Some(setl_id) = setl_id else {
        return ok(&info, vec![]);
    };
    let result = serde_json::to_value(&info).expect("serialises");
    let mulaid_person = grantor.filter(|_| !s.acct_mulaid_pay.is_zero());
    tx.execute(
        "insert into settlements (setl_id, msgid, mdtrt_id, person_id, insutype, kind, fixmedins_code, year,
             setl_time, setl_date, medfee_sumamt, fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt, inscp_scp_amt,
             act_pay_dedc, hifp_pay, hifob_pay, hifmi_pay, fund_pay_sumamt, acct_pay, acct_mulaid_pay, psn_cash_pay,
             mulaid_person_id, result, mid_setl, oth_pay, rule, terms, filings, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                 $23, $24, $25, $26, $27, $28, $29, $30, 'settled')",
        &[
            &setl_id,
            &cmd.msgid,
            &v.mdtrt_id,
            &person.person_id,
            &v.insutype,
            &v.kind,
            &v.fixmedins_code,
            &year,
            &setl_time,
            &setl_time.date_naive(),
            &medfee,
            &sums.fulamt_ownpay_amt,
            &sums.overlmt_amt,
            &sums.preselfpay_amt,
            &sums.inscp_scp_amt,
            &s.act_pay_dedc,
            &s.hifp_pay,
            &s.hifob_pay,
            &s.hifmi_pay,
            &s.fund_pay_sumamt,
            &s.acct_pay,
            &s.acct_mulaid_pay,
            &s.psn_cash_pay,
            &mulaid_person,
            &result,
            &interim,
            &oth_pay,
            &rule,
            &if filed.chronic.is_some() {
                "chronic-disease"
            } else {
                "ordinary"
            },
            &filing_ids,
        ],
    )
    .await?;
    tx.execute(
        "update fee_lines set setl_id = $2 where mdtrt_id = $1 and cancelled_at is null and setl_id is null",
        &[&v.mdtrt_id, &setl_id],
    )
    .await?;
    let mut out = vec![h.event(
        &ev::SettlementCompleted {
            setl_id: setl_id.to_string(),
            msgid: cmd.msgid.clone(),
            mdtrt_id: v.mdtrt_id.to_string(),
            psn_no: person.person_id.to_string(),
            insutype: v.insutype.clone(),
            fixmedins_code: v.fixmedins_code.clone(),
            setl_time,
            medfee_sumamt: info.medfee_sumamt.clone(),
            fund_pay_sumamt: info.fund_pay_sumamt.clone(),
            hifp_pay: info.hifp_pay.clone(),
            hifob_pay: info.hifob_pay.clone(),
            hifmi_pay: info.hifmi_pay.clone(),
            acct_pay: info.acct_pay.clone(),
            acct_mulaid_pay: info.acct_mulaid_pay.clone(),
            psn_cash_pay: info.psn_cash_pay.clone(),
            oth_pay: info.oth_pay.clone(),
            rule,
            filings: info.filings.clone(),
        },
        msg,
    )];
    let reference = format!("settlement:{setl_id}");
    for (account, kind, amount) in [
        (Some(person.person_id), "settlement", s.acct_pay),
        (mulaid_person, "mutual-aid", s.acct_mulaid_pay),
    ] {
        let Some(account) = account.filter(|_| !amount.is_zero()) else {
            continue;
        };
        tx.execute(
            "insert into account_entries (person_id, kind, amount, reference, setl_id, beneficiary, message_id)
             values ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &account,
                &kind,
                &(-amount),
                &reference,
                &setl_id,
                &person.person_id,
                &msg.envelope.message_id,
            ],
        )
        .await?;
        out.push(h.event(
            &ev::AccountDebited {
                psn_no: account.to_string(),
                beneficiary_psn_no: person.person_id.to_string(),
                setl_id: setl_id.to_string(),
                kind: kind.to_owned(),
                amount: text(amount),
                balc: text(store::balance(tx, account).await?),
            },
            msg,
        ));
    }
    Ok(messaging::Handled {
        result: Some(result),
        outgoing: out,
        ..Default::default()
    })
}

struct Booked {
    setl_id: Uuid,
    msgid: String,
    mdtrt_id: Uuid,
    person_id: Uuid,
    insutype: String,
    fixmedins_code: String,
    medfee_sumamt: Decimal,
    fund_pay_sumamt: Decimal,
    acct_pay: Decimal,
    acct_mulaid_pay: Decimal,
    mulaid_person_id: Option<Uuid>,
    status: String,
    setl_time: chrono::DateTime<chrono::Utc>,
}

async fn booked(
    tx: &Transaction<'_>,
    filter: &str,
    key: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Option<Booked>, HandlerError> {
    let row = tx
        .query_opt(
            &format!(
                "select setl_id, msgid, mdtrt_id, person_id, insutype, fixmedins_code, medfee_sumamt, fund_pay_sumamt,
                        acct_pay, acct_mulaid_pay, mulaid_person_id, status, setl_time
                 from settlements where {filter} for update"
            ),
            &[key],
        )
        .await?;
    Ok(row.map(|r| Booked {
        setl_id: r.get(0),
        msgid: r.get(1),
        mdtrt_id: r.get(2),
        person_id: r.get(3),
        insutype: r.get(4),
        fixmedins_code: r.get(5),
        medfee_sumamt: r.get(6),
        fund_pay_sumamt: r.get(7),
        acct_pay: r.get(8),
        acct_mulaid_pay: r.get(9),
        mulaid_person_id: r.get(10),
        status: r.get(11),
        setl_time: r.get(12),
    }))
}

async fn cancel_result(tx: &Transaction<'_>, b: &Booked) -> Result<c::CancelSettlementResult, HandlerError> {
    Ok(c::CancelSettlementResult {
        setl_id: b.setl_id.to_string(),
        mdtrt_id: b.mdtrt_id.to_string(),
        status: "cancelled".into(),
        fund_pay_sumamt: text(b.fund_pay_sumamt),
        acct_pay: text(b.acct_pay),
        acct_mulaid_pay: text(b.acct_mulaid_pay),
        balc: text(store::balance(tx, b.person_id).await?),
    })
}

/// Undoes a standing settlement: it stops counting in the year's totals, its lines are free
/// again, and what the accounts paid goes back to them as reversal entries.
async fn undo(
    h: &BenefitsHandler,
    tx: &Transaction<'_>,
    msg: &Incoming,
    b: &Booked,
    how: &str,
    msgid: &str,
) -> Result<Vec<messaging::Outgoing>, HandlerError> {
    if let Some(later) = tx
        .query_opt(
            "select setl_id from settlements
             where mdtrt_id = $1 and status = 'settled' and setl_id <> $2 and setl_time >= $3
             order by setl_time desc limit 1",
            &[&b.mdtrt_id, &b.setl_id, &b.setl_time],
        )
        .await?
    {
        let later: Uuid = later.get(0);
        return Err(conflict(
            "setl_id",
            format!(
                "the stay's later settlement {later} stands (it bore no second deductible because of this one): \
                 cancel it first"
            ),
        ));
    }
    let mut locked = vec![b.person_id];
    locked.extend(b.mulaid_person_id);
    store::lock_persons(tx, &locked).await?;
    tx.execute(
        "update settlements set status = 'cancelled', cancel_how = $2, cancel_msgid = $3, cancelled_at = now()
         where setl_id = $1",
        &[&b.setl_id, &how, &msgid],
    )
    .await?;
    tx.execute(
        "update fee_lines set setl_id = null where setl_id = $1",
        &[&b.setl_id],
    )
    .await?;
    let reference = format!("reversal:{}", b.setl_id);
    for (account, amount) in [
        (Some(b.person_id), b.acct_pay),
        (b.mulaid_person_id, b.acct_mulaid_pay),
    ] {
        let Some(account) = account.filter(|_| !amount.is_zero()) else {
            continue;
        };
        tx.execute(
            "insert into account_entries (person_id, kind, amount, reference, setl_id, beneficiary, message_id)
             values ($1, 'reversal', $2, $3, $4, $5, $6)",
            &[
                &account,
                &amount,
                &reference,
                &b.setl_id,
                &b.person_id,
                &msg.envelope.message_id,
            ],
        )
        .await?;
    }
    Ok(vec![h.event(
        &ev::SettlementCancelled {
            setl_id: b.setl_id.to_string(),
            msgid: b.msgid.clone(),
            mdtrt_id: b.mdtrt_id.to_string(),
            psn_no: b.person_id.to_string(),
            insutype: b.insutype.clone(),
            fixmedins_code: b.fixmedins_code.clone(),
            how: how.to_owned(),
            medfee_sumamt: text(b.medfee_sumamt),
            fund_pay_sumamt: text(b.fund_pay_sumamt),
            acct_pay: text(b.acct_pay),
            acct_mulaid_pay: text(b.acct_mulaid_pay),
        },
        msg,
    )])
}

pub async fn cancel_settlement(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::CancelSettlement = msg.decode()?;
    if let Some(b) = booked(tx, "cancel_msgid = $1", &cmd.msgid).await? {
        return ok(&cancel_result(tx, &b).await?, vec![]);
    }
    let id = uuid("setl_id", &cmd.setl_id)?;
    let b = booked(tx, "setl_id = $1", &id)
        .await?
        .filter(|b| b.person_id.to_string() == cmd.psn_no)
        .ok_or_else(|| not_found("setl_id", "no such settlement of psn_no"))?;
    if b.mdtrt_id.to_string() != cmd.mdtrt_id {
        return Err(invalid("mdtrt_id", "the settlement belongs to another visit"));
    }
    if b.status == "cancelled" {
        return Err(conflict("setl_id", "already cancelled"));
    }
    let out = undo(h, tx, msg, &b, "cancel", &cmd.msgid).await?;
    ok(&cancel_result(tx, &b).await?, out)
}

pub async fn reverse(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::Reverse = msg.decode()?;
    if !matches!(cmd.oinfno.as_str(), "2207" | "2304") {
        return Err(invalid(
            "oinfno",
            "only settlements (2207, 2304) are reversed by message id",
        ));
    }
    let Some(b) = booked(tx, "msgid = $1", &cmd.omsgid).await? else {
        tx.execute(
            "insert into reversed_msgids (omsgid, msgid) values ($1, $2) on conflict do nothing",
            &[&cmd.omsgid, &cmd.msgid],
        )
        .await?;
        return ok(
            &c::ReverseResult {
                omsgid: cmd.omsgid,
                reversed: false,
                setl_id: None,
            },
            vec![],
        );
    };
    if b.person_id.to_string() != cmd.psn_no {
        return Err(not_found(
            "omsgid",
            "no settlement of psn_no with this message id",
        ));
    }
    let out = if b.status == "settled" {
        undo(h, tx, msg, &b, "reversal", &cmd.msgid).await?
    } else {
        vec![]
    };
    ok(
        &c::ReverseResult {
            omsgid: cmd.omsgid,
            reversed: true,
            setl_id: Some(b.setl_id.to_string()),
        },
        out,
    )
}

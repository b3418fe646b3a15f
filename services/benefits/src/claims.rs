//! Manual 手工报销 and maternity 生育 reimbursement (issue 10 §2): care the person paid in cash,
//! with the institution's fee lines and the documents (uploaded images, paper mailed later).
//!
//! The split follows the same rules as a real-time settlement at that institution on the day
//! of care (`settle::split_fee_line`, `settle::year_terms`, `split::split`): the catalogue
//! splits each line, the in-scope amount bears what is left of the deductible, the pooled
//! fund pays its ratio up to its cap, the fund above the cap its share; no personal account
//! is used (the person already paid). It is an estimate at submission and fixed at approval,
//! when the claim starts counting in the year's deductible and caps like a settlement.
//! Maternity uses the employee-medical (310) inpatient ratios: the notices give no maternity
//! figures of their own (a placeholder, like the seed policy).
//!
//! submitted → under-review → approved → paid | payment-failed (→ paid on a later result);
//! under-review → documents-needed → (documents added) under-review; under-review or
//! documents-needed → rejected. Every step is a `claim-status-changed` event; approval also
//! orders the payment into the card's financial account (`claim-payment-ordered`), which the
//! bank answers with `record-claim-payment`.

use crate::domain::money::text;
use crate::domain::split::{self, LineSplit};
use crate::filings::CrossRegion;
use crate::handlers::{
    BenefitsHandler, HResult, conflict, cst, insutype, invalid, money, not_found, ok, time, uuid,
};
use crate::settle::{fee_amounts, not_eligible, person_of, split_fee_line, year_terms};
use crate::store;
use chrono::Datelike;
use chrono::{DateTime, Utc};
use contracts::InsuranceType;
use contracts::benefits::commands as c;
use contracts::benefits::events as ev;
use contracts::freeze::{FreezeMode, FreezeOrder, Request, deadline_windows, extend_deadline};
use deadpool_postgres::Transaction;
use messaging::freeze::Freeze;
use messaging::{HandlerError, Incoming, Outgoing};
use rust_decimal::Decimal;
use uuid::Uuid;

const DOCUMENT_KINDS: [&str; 6] = [
    "invoice",
    "fee-list",
    "discharge-summary",
    "card-copy",
    "birth-certificate",
    "other",
];
const CASH_REASONS: [&str; 4] = ["settlement-stop", "no-card", "emergency", "other"];

/// The policy row a claim of `kind` settles by.
fn policy_kind(kind: &str) -> &str {
    if kind == "maternity" { "inpatient" } else { kind }
}

fn documents(docs: &[c::ClaimDocument]) -> Result<(), HandlerError> {
    for (i, d) in docs.iter().enumerate() {
        if !DOCUMENT_KINDS.contains(&d.kind.as_str()) {
            return Err(invalid(
                &format!("documents[{i}].kind"),
                format!(
                    "'{}' is not a document kind ({})",
                    d.kind,
                    DOCUMENT_KINDS.join(", ")
                ),
            ));
        }
        if d.uri.trim().is_empty() && !d.paper_mailed {
            return Err(invalid(
                &format!("documents[{i}].uri"),
                "an uploaded document needs its uri, or paper_mailed for one sent by post",
            ));
        }
    }
    Ok(())
}

async fn add_documents(
    tx: &Transaction<'_>,
    claim: Uuid,
    docs: &[c::ClaimDocument],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandlerError> {
    let kinds: Vec<&str> = docs.iter().map(|d| d.kind.as_str()).collect();
    let uris: Vec<&str> = docs.iter().map(|d| d.uri.as_str()).collect();
    let paper: Vec<bool> = docs.iter().map(|d| d.paper_mailed).collect();
    // Numbered after the claim's documents so far, in the order given (the claim row is
    // locked, so no other step numbers at the same time).
    tx.execute(
        "insert into claim_documents (claim_id, seq, kind, uri, paper_mailed, added_at)
         select $1, (select coalesce(max(seq), 0) from claim_documents where claim_id = $1) + d.n,
                d.kind, d.uri, d.paper, $5
         from unnest($2::text[], $3::text[], $4::bool[]) with ordinality as d(kind, uri, paper, n)",
        &[&claim, &kinds, &uris, &paper, &at],
    )
    .await?;
    Ok(())
}

/// A claim as stored.
struct Claim {
    claim_id: Uuid,
    person_id: Uuid,
    insutype: String,
    kind: String,
    fixmedins_code: String,
    begntime: chrono::DateTime<chrono::Utc>,
    medfee: Decimal,
    lines: LineSplit,
    split: split::Split,
    final_split: bool,
    status: String,
    status_reason: Option<String>,
    documents: i64,
    submit_by: Option<chrono::DateTime<chrono::Utc>>,
    retroactive: bool,
    elsewhere: Elsewhere,
}

impl Claim {
    fn result(&self) -> c::ClaimResult {
        c::ClaimResult {
            claim_id: self.claim_id.to_string(),
            psn_no: self.person_id.to_string(),
            insutype: self.insutype.clone(),
            kind: self.kind.clone(),
            status: self.status.clone(),
            status_reason: self.status_reason.clone(),
            documents: usize::try_from(self.documents).unwrap_or(0),
            medfee_sumamt: text(self.medfee),
            fulamt_ownpay_amt: text(self.lines.fulamt_ownpay_amt),
            overlmt_selfpay: text(self.lines.overlmt_amt),
            preselfpay_amt: text(self.lines.preselfpay_amt),
            inscp_scp_amt: text(self.lines.inscp_scp_amt),
            act_pay_dedc: text(self.split.act_pay_dedc),
            hifp_pay: text(self.split.hifp_pay),
            hifob_pay: text(self.split.hifob_pay),
            hifmi_pay: text(self.split.hifmi_pay),
            fund_pay_sumamt: text(self.split.fund_pay_sumamt),
            psn_pay: text(self.medfee - self.split.fund_pay_sumamt),
            final_split: self.final_split,
            submit_by: self.submit_by.map(|t| t.with_timezone(&cst())),
            retroactive: self.retroactive,
            filings: crate::filings::names(&self.elsewhere.filings),
            unfiled_elsewhere: self.elsewhere.unfiled,
        }
    }

    fn changed(&self, h: &BenefitsHandler, cause: &Incoming) -> Outgoing {
        h.event(
            &ev::ClaimStatusChanged {
                claim_id: self.claim_id.to_string(),
                psn_no: self.person_id.to_string(),
                insutype: self.insutype.clone(),
                kind: self.kind.clone(),
                status: self.status.clone(),
                reason: self.status_reason.clone(),
                medfee_sumamt: text(self.medfee),
                amount: text(self.split.fund_pay_sumamt),
                at: cause.received_at.with_timezone(&cst()),
            },
            cause,
        )
    }
}

/// The claim `id` names, locked for the step.
async fn load(tx: &Transaction<'_>, id: &str) -> Result<Claim, HandlerError> {
    let claim_id = uuid("claim_id", id)?;
    let r = tx
        .query_opt(
            "select claim_id, person_id, insutype, kind, fixmedins_code, begntime, medfee_sumamt,
                    fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt, inscp_scp_amt, act_pay_dedc, hifp_pay,
                    hifob_pay, hifmi_pay, fund_pay_sumamt, final_split, status, status_reason,
                    (select count(*) from claim_documents d where d.claim_id = claims.claim_id),
                    submit_by, retroactive, filings, unfiled_elsewhere
             from claims where claim_id = $1 for update",
            &[&claim_id],
        )
        .await?
        .ok_or_else(|| not_found("claim_id", "no claim with this claim_id"))?;
    Ok(Claim {
        claim_id: r.get(0),
        person_id: r.get(1),
        insutype: r.get(2),
        kind: r.get(3),
        fixmedins_code: r.get(4),
        begntime: r.get(5),
        medfee: r.get(6),
        lines: LineSplit {
            fulamt_ownpay_amt: r.get(7),
            overlmt_amt: r.get(8),
            preselfpay_amt: r.get(9),
            inscp_scp_amt: r.get(10),
        },
        split: split::Split {
            act_pay_dedc: r.get(11),
            hifp_pay: r.get(12),
            hifob_pay: r.get(13),
            hifmi_pay: r.get(14),
            fund_pay_sumamt: r.get(15),
            ..Default::default()
        },
        final_split: r.get(16),
        status: r.get(17),
        status_reason: r.get(18),
        documents: r.get(19),
        submit_by: r.get(20),
        retroactive: r.get(21),
        elsewhere: Elsewhere {
            filings: r.get(22),
            unfiled: r.get(23),
        },
    })
}

/// The split of a claim under the terms of its year as they stand now.
#[allow(clippy::too_many_arguments)]
async fn split_now(
    tx: &Transaction<'_>,
    person: Uuid,
    t: InsuranceType,
    insutype: &str,
    kind: &str,
    fixmedins_code: &str,
    day: chrono::NaiveDate,
    medfee: Decimal,
    lines: LineSplit,
) -> Result<(split::Split, Option<i32>, Elsewhere), HandlerError> {
    let (hosp_lv, region) = crate::filings::institution(tx, fixmedins_code)
        .await?
        .ok_or_else(|| not_found("fixmedins_code", "no designated institution with this code"))?;
    let policy = store::policy(tx, insutype, policy_kind(kind), &hosp_lv, day)
        .await?
        .ok_or_else(|| {
            not_found(
                "insutype",
                format!("no benefit policy in force for {insutype} on {day}"),
            )
        })?;
    if let Err(reason) = store::judge(tx, person, t, day).await? {
        return Err(not_eligible(t, reason, day));
    }
    // Care elsewhere (issue 10 §1): the ratio a cross-region filing valid on the day gives,
    // or, without one, the ordinary ratio less the policy's reduction for unfiled care.
    let mut elsewhere = Elsewhere::default();
    let ratio = match crate::filings::cross_region(tx, person, &region, day).await? {
        CrossRegion::Home => policy.ratio,
        CrossRegion::Filed { filing_id, reduction } => {
            elsewhere.filings.push(filing_id);
            crate::filings::reduced(policy.ratio, reduction)
        }
        CrossRegion::Unfiled { .. } => {
            elsewhere.unfiled = true;
            let terms = crate::filings::terms(tx, insutype).await?;
            crate::filings::reduced(policy.ratio, terms.unfiled_ratio_reduction)
        }
    };
    store::lock_persons(tx, &[person]).await?;
    let terms = year_terms(tx, person, t, insutype, policy_kind(kind), &policy, day).await?;
    let s = split::split(&split::Input {
        medfee_sumamt: medfee,
        lines,
        deductible_left: terms.deductible_left,
        ratio,
        pool_cap_left: terms.pool_cap_left,
        large: terms.large,
        account: Decimal::ZERO,
        mutual_aid: Decimal::ZERO,
        self_pay: false,
    });
    Ok((s, policy.claim_window_days, elsewhere))
}

/// A claim's care elsewhere: the cross-region filing its terms came from, or unfiled.
#[derive(Default)]
struct Elsewhere {
    filings: Vec<Uuid>,
    unfiled: bool,
}

/// The request a settlement stop refuses: real-time settlement at an institution.
fn settle_request() -> Request<'static> {
    Request {
        line: contracts::Line::Medical,
        service: contracts::benefits::SERVICE,
        channel: None,
        operation: "settle",
        payer_kind: None,
    }
}

/// The settlement stops (orders suspending real-time settlement on the medical line), as
/// `[start, end)`; one to be announced runs until now.
pub(crate) fn settlement_stops(freeze: Option<&Freeze>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let Some(freeze) = freeze else { return vec![] };
    let now = freeze.now();
    freeze
        .book()
        .iter()
        .filter(|o| o.mode == FreezeMode::Suspended && o.covers(&settle_request()))
        .map(|o| {
            let start = o.starts_at.with_timezone(&Utc);
            (start, o.ends_at.map_or(now, |e| e.with_timezone(&Utc)).max(start))
        })
        .collect()
}

/// A claim's deadline: the end of the claim window after the day care began (China time),
/// extended by the settlement stops that extend deadlines (顺延).
fn submit_by(freeze: Option<&Freeze>, day: chrono::NaiveDate, window_days: i32) -> DateTime<Utc> {
    let end = (day + chrono::Duration::days(i64::from(window_days) + 1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_local_timezone(cst())
        .single()
        .expect("a fixed offset")
        .with_timezone(&Utc);
    let Some(freeze) = freeze else { return end };
    let stops: Vec<FreezeOrder> = freeze
        .book()
        .iter()
        .filter(|o| o.covers(&settle_request()))
        .cloned()
        .collect();
    extend_deadline(
        end,
        &deadline_windows(&stops, contracts::Line::Medical, freeze.now()),
    )
}

pub async fn submit(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::SubmitClaim = msg.decode()?;
    let person = person_of(tx, &cmd.psn_no).await?;
    let t = insutype("insutype", &cmd.insutype)?;
    if t == InsuranceType::LargeAmountMedical {
        return Err(invalid(
            "insutype",
            "a claim is made under 310 or 390; the large-amount fund (330) pays through them",
        ));
    }
    if !["outpatient", "inpatient", "maternity"].contains(&cmd.kind.as_str()) {
        return Err(invalid(
            "kind",
            format!(
                "'{}' is not a claim kind (outpatient, inpatient, maternity)",
                cmd.kind
            ),
        ));
    }
    if cmd.kind == "maternity" && t != InsuranceType::EmployeeMedical {
        return Err(invalid(
            "insutype",
            "maternity reimbursement is part of employee medical (310, maternity 510)",
        ));
    }
    if !CASH_REASONS.contains(&cmd.reason.as_str()) {
        return Err(invalid(
            "reason",
            format!("'{}' is not a reason ({})", cmd.reason, CASH_REASONS.join(", ")),
        ));
    }
    if cmd.documents.is_empty() {
        return Err(invalid(
            "documents",
            "a claim needs its documents (at least the invoice)",
        ));
    }
    documents(&cmd.documents)?;
    let begntime = time("begntime", &cmd.begntime)?;
    if begntime > msg.received_at {
        return Err(invalid("begntime", "the care cannot begin after the claim"));
    }
    let day = begntime.with_timezone(&cst()).date_naive();
    if cmd.feedetail.is_empty() {
        return Err(invalid("feedetail", "at least one fee line is required"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut lines = Vec::new();
    let mut sums = LineSplit::default();
    let mut medfee = Decimal::ZERO;
    for (i, f) in cmd.feedetail.iter().enumerate() {
        if f.feedetl_sn.trim().is_empty() || !seen.insert(f.feedetl_sn.clone()) {
            return Err(invalid(
                &format!("feedetail[{i}].feedetl_sn"),
                "empty or repeated in this claim",
            ));
        }
        let (cnt, pric, amount) = fee_amounts(i, f)?;
        let line = split_fee_line(tx, f, cnt, pric, amount).await?;
        sums += line.split;
        medfee += line.amount;
        lines.push(line.result());
    }
    let theirs = money("medfee_sumamt", &cmd.medfee_sumamt)?;
    if theirs != medfee {
        return Err(invalid(
            "medfee_sumamt",
            format!("the lines add up to {}, not {}", text(medfee), text(theirs)),
        ));
    }
    let (s, window, elsewhere) = split_now(
        tx,
        person.person_id,
        t,
        &cmd.insutype,
        &cmd.kind,
        &cmd.fixmedins_code,
        day,
        medfee,
        sums,
    )
    .await?;
    let freeze = h.freeze.get();
    let deadline = window.map(|w| submit_by(freeze, day, w));
    if let (Some(w), Some(d)) = (window, deadline)
        && msg.received_at >= d
    {
        return Err(conflict(
            "begntime",
            format!(
                "the claim window for care on {day} ({w} days, extended by any settlement stop) closed at {}",
                d.with_timezone(&cst()).to_rfc3339()
            ),
        ));
    }
    // 追溯报销: care (its start or a fee line) inside a settlement stop of the freeze orders,
    // paid in cash then and reimbursed afterwards. A claim that gives the reason
    // `settlement-stop` for care outside every ordered stop is still taken (an
    // institution's own outage is not in the orders), but is not marked retroactive.
    let stops = settlement_stops(freeze);
    let mut times = vec![begntime.with_timezone(&Utc)];
    for (i, f) in cmd.feedetail.iter().enumerate() {
        times.push(time(&format!("feedetail[{i}].fee_ocur_time"), &f.fee_ocur_time)?.with_timezone(&Utc));
    }
    let retroactive = times.iter().any(|t| stops.iter().any(|(s, e)| s <= t && t < e));
    let claim_id = Uuid::now_v7();
    let at = msg.received_at;
    tx.execute(
        "insert into claims (claim_id, person_id, insutype, kind, fixmedins_code, begntime, year, cash_reason,
             lines, medfee_sumamt, fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt, inscp_scp_amt,
             act_pay_dedc, hifp_pay, hifob_pay, hifmi_pay, fund_pay_sumamt, status, submitted_at, updated_at,
             submit_by, retroactive, filings, unfiled_elsewhere)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                 'submitted', $20, $20, $21, $22, $23, $24)",
        &[
            &claim_id,
            &person.person_id,
            &cmd.insutype,
            &cmd.kind,
            &cmd.fixmedins_code,
            &begntime.with_timezone(&chrono::Utc),
            &day.year(),
            &cmd.reason,
            &serde_json::to_value(&lines).expect("lines serialise"),
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
            &at,
            &deadline,
            &retroactive,
            &elsewhere.filings,
            &elsewhere.unfiled,
        ],
    )
    .await?;
    add_documents(tx, claim_id, &cmd.documents, at).await?;
    let claim = Claim {
        claim_id,
        person_id: person.person_id,
        insutype: cmd.insutype,
        kind: cmd.kind,
        fixmedins_code: cmd.fixmedins_code,
        begntime: begntime.with_timezone(&chrono::Utc),
        medfee,
        lines: sums,
        split: s,
        final_split: false,
        status: "submitted".into(),
        status_reason: None,
        documents: i64::try_from(cmd.documents.len()).unwrap_or(i64::MAX),
        submit_by: deadline,
        retroactive,
        elsewhere,
    };
    ok(&claim.result(), vec![claim.changed(h, msg)])
}

pub async fn review(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::ReviewClaim = msg.decode()?;
    if cmd.reviewer.trim().is_empty() {
        return Err(invalid("reviewer", "the reviewer is required"));
    }
    let reason = cmd.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let (to, allowed_from): (&str, &[&str]) = match cmd.action.as_str() {
        "start" => ("under-review", &["submitted"]),
        "approve" => ("approved", &["under-review"]),
        "reject" => ("rejected", &["under-review", "documents-needed"]),
        "request-documents" => ("documents-needed", &["under-review"]),
        other => {
            return Err(invalid(
                "action",
                format!("'{other}' is not a review step (start, approve, reject, request-documents)"),
            ));
        }
    };
    if matches!(to, "rejected" | "documents-needed") && reason.is_none() {
        return Err(invalid(
            "reason",
            format!("to {} a claim the reason is required", cmd.action),
        ));
    }
    let mut claim = load(tx, &cmd.claim_id).await?;
    if !allowed_from.contains(&claim.status.as_str()) {
        return Err(conflict(
            "action",
            format!(
                "a claim that is {} cannot be taken to {to} (only from {})",
                claim.status,
                allowed_from.join(" or ")
            ),
        ));
    }
    let mut out = Vec::new();
    claim.status = to.to_owned();
    claim.status_reason = reason.map(str::to_owned);
    if to == "approved" {
        // The split is fixed now, against the year as it stands (settlements and other
        // claims may have used the deductible since the submission).
        let t = insutype("insutype", &claim.insutype)?;
        let day = claim.begntime.with_timezone(&cst()).date_naive();
        let (split, _, elsewhere) = split_now(
            tx,
            claim.person_id,
            t,
            &claim.insutype,
            &claim.kind,
            &claim.fixmedins_code,
            day,
            claim.medfee,
            claim.lines,
        )
        .await?;
        claim.split = split;
        claim.elsewhere = elsewhere;
        claim.final_split = true;
        if claim.split.fund_pay_sumamt.is_zero() {
            // Nothing to pay: the deductible and self-paid parts took it all.
            claim.status = "paid".into();
            claim.status_reason = Some("nothing to reimburse (0.00)".into());
        }
    }
    tx.execute(
        "update claims set status = $2, status_reason = $3, reviewer = $4, updated_at = $5, final_split = $6,
             act_pay_dedc = $7, hifp_pay = $8, hifob_pay = $9, hifmi_pay = $10, fund_pay_sumamt = $11,
             filings = $12, unfiled_elsewhere = $13
         where claim_id = $1",
        &[
            &claim.claim_id,
            &claim.status,
            &claim.status_reason,
            &cmd.reviewer,
            &msg.received_at,
            &claim.final_split,
            &claim.split.act_pay_dedc,
            &claim.split.hifp_pay,
            &claim.split.hifob_pay,
            &claim.split.hifmi_pay,
            &claim.split.fund_pay_sumamt,
            &claim.elsewhere.filings,
            &claim.elsewhere.unfiled,
        ],
    )
    .await?;
    out.push(claim.changed(h, msg));
    if claim.status == "approved" {
        out.push(payment_order(h, tx, &claim, msg).await?);
    }
    ok(&claim.result(), out)
}

async fn payment_order(
    h: &BenefitsHandler,
    tx: &Transaction<'_>,
    claim: &Claim,
    msg: &Incoming,
) -> Result<Outgoing, HandlerError> {
    let person = store::person_by_id(tx, claim.person_id)
        .await?
        .ok_or_else(|| not_found("claim_id", "the claim's person is no longer known"))?;
    let card_state: Option<String> = tx
        .query_opt(
            "select state from card_status where id_number = $1",
            &[&person.id_number],
        )
        .await?
        .map(|r| r.get(0));
    Ok(h.event(
        &ev::ClaimPaymentOrdered {
            claim_id: claim.claim_id.to_string(),
            psn_no: claim.person_id.to_string(),
            id_number: person.id_number,
            amount: text(claim.split.fund_pay_sumamt),
            card_state: card_state.unwrap_or_else(|| "none".into()),
        },
        msg,
    ))
}

pub async fn add_claim_documents(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::AddClaimDocuments = msg.decode()?;
    if cmd.documents.is_empty() {
        return Err(invalid("documents", "at least one document"));
    }
    documents(&cmd.documents)?;
    let mut claim = load(tx, &cmd.claim_id).await?;
    if !["submitted", "under-review", "documents-needed"].contains(&claim.status.as_str()) {
        return Err(conflict(
            "claim_id",
            format!("the claim is {}: its review is over", claim.status),
        ));
    }
    add_documents(tx, claim.claim_id, &cmd.documents, msg.received_at).await?;
    claim.documents += i64::try_from(cmd.documents.len()).unwrap_or(0);
    let mut out = Vec::new();
    if claim.status == "documents-needed" {
        claim.status = "under-review".into();
        claim.status_reason = None;
        tx.execute(
            "update claims set status = $2, status_reason = null, updated_at = $3 where claim_id = $1",
            &[&claim.claim_id, &claim.status, &msg.received_at],
        )
        .await?;
        out.push(claim.changed(h, msg));
    }
    ok(&claim.result(), out)
}

pub async fn status(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::ClaimQuery = msg.decode()?;
    ok(&load(tx, &cmd.claim_id).await?.result(), vec![])
}

pub async fn record_payment(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::RecordClaimPayment = msg.decode()?;
    let to = match cmd.outcome.as_str() {
        "paid" => "paid",
        "failed" => "payment-failed",
        other => {
            return Err(invalid(
                "outcome",
                format!("'{other}' is not an outcome (paid, failed)"),
            ));
        }
    };
    if cmd.bank_ref.trim().is_empty() {
        return Err(invalid("bank_ref", "the bank's reference is required"));
    }
    let reason = cmd.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if to == "payment-failed" && reason.is_none() {
        return Err(invalid("reason", "a failed payment needs its reason"));
    }
    let amount = money("amount", &cmd.amount)?;
    let mut claim = load(tx, &cmd.claim_id).await?;
    if !["approved", "payment-failed"].contains(&claim.status.as_str()) {
        return Err(conflict(
            "claim_id",
            format!("the claim is {}: only an approved claim is paid", claim.status),
        ));
    }
    if amount != claim.split.fund_pay_sumamt {
        return Err(conflict(
            "amount",
            format!(
                "the claim was approved for {}, not {}",
                text(claim.split.fund_pay_sumamt),
                text(amount)
            ),
        ));
    }
    claim.status = to.to_owned();
    claim.status_reason = reason.map(str::to_owned);
    tx.execute(
        "update claims set status = $2, status_reason = $3, bank_ref = $4, updated_at = $5 where claim_id = $1",
        &[
            &claim.claim_id,
            &claim.status,
            &claim.status_reason,
            &cmd.bank_ref,
            &msg.received_at,
        ],
    )
    .await?;
    ok(&claim.result(), vec![claim.changed(h, msg)])
}

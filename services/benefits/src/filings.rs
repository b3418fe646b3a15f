//! Filings 备案 that change how settlements and claims settle (issue 10 §1).
//!
//! - Cross-region care 异地就医 (`file-cross-region`): long-term residence, work posting,
//!   retirement elsewhere, referral, for one region, with validity dates; approved at once.
//!   Care at an institution of that region settles at the ordinary ratio of the institution's
//!   level less the filing type's reduction (`cross_region_terms`; Jinan 2020: none). Care
//!   elsewhere without a filing valid on the day: real-time settlement refused naming the
//!   filing to make (`filing_terms.unfiled_realtime` false, the seed), and a claim in cash
//!   (`submit-claim`) reimbursed at the ordinary ratio less `unfiled_ratio_reduction`.
//!   Late filing 补登记: `valid_from` may be before the day of filing only when it lies inside
//!   a settlement stop of the freeze orders and the filing is made within `late_filing_days`
//!   after that stop ended; otherwise the reply says to claim in cash at the agency.
//! - Outpatient chronic and special disease 门诊慢特病 (`file-chronic-disease`): a disease of
//!   `chronic_diseases`; by the simple procedure approved at once, or submitted for full
//!   review (`review-filing`). An approved filing whose disease the outpatient visit's
//!   diagnosis starts with gives the chronic terms (own yearly deductible, ratio), up to
//!   `chronic_max_drug_days` of drugs per visit, on the social security card alone
//!   (`mdtrt_cert_type` 03).
//! - Special drugs 特治特药 (`file-special-drug`): a drug at one institution; its lines there
//!   settle at `special_drug_ratio`, after the visit's other lines.

use crate::handlers::{BenefitsHandler, HResult, conflict, cst, date, invalid, not_found, ok, reject, uuid};
use crate::settle::person_of;
use chrono::{NaiveDate, Utc};
use contracts::ErrorCode;
use contracts::benefits::filings as f;
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming, Outgoing};
use rust_decimal::Decimal;
use uuid::Uuid;

pub const CROSS_REGION_TYPES: [&str; 4] = [
    "long-term-residence",
    "work-posting",
    "retirement-elsewhere",
    "referral",
];

/// The terms of filings for one insurance type (`filing_terms`).
pub struct Terms {
    pub unfiled_realtime: bool,
    pub unfiled_ratio_reduction: Decimal,
    pub late_filing_days: i32,
    pub chronic_deductible: Decimal,
    pub chronic_ratio: Decimal,
    pub chronic_max_drug_days: i32,
    pub special_drug_ratio: Decimal,
}

pub async fn terms(tx: &Transaction<'_>, insutype: &str) -> Result<Terms, HandlerError> {
    let r = tx
        .query_opt(
            "select unfiled_realtime, unfiled_ratio_reduction, late_filing_days, chronic_deductible, chronic_ratio,
                    chronic_max_drug_days, special_drug_ratio from filing_terms where insutype = $1",
            &[&insutype],
        )
        .await?
        .ok_or_else(|| not_found("insutype", format!("no filing terms for {insutype}")))?;
    Ok(Terms {
        unfiled_realtime: r.get(0),
        unfiled_ratio_reduction: r.get(1),
        late_filing_days: r.get(2),
        chronic_deductible: r.get(3),
        chronic_ratio: r.get(4),
        chronic_max_drug_days: r.get(5),
        special_drug_ratio: r.get(6),
    })
}

pub async fn home_region(tx: &Transaction<'_>) -> Result<String, HandlerError> {
    Ok(tx.query_one("select region from home_region", &[]).await?.get(0))
}

/// An institution's level and region.
pub async fn institution(tx: &Transaction<'_>, code: &str) -> Result<Option<(String, String)>, HandlerError> {
    Ok(tx
        .query_opt(
            "select hosp_lv, region from institutions where fixmedins_code = $1",
            &[&code],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// Care at an institution of another region: the filing that covers it, or none.
pub enum CrossRegion {
    /// The institution is in the insured region.
    Home,
    /// Filed: the filing and its type's reduction of the ratio.
    Filed { filing_id: Uuid, reduction: Decimal },
    /// Not filed for `region` on the day.
    Unfiled { region: String },
}

pub async fn cross_region(
    tx: &Transaction<'_>,
    person: Uuid,
    region: &str,
    day: NaiveDate,
) -> Result<CrossRegion, HandlerError> {
    if region == home_region(tx).await? {
        return Ok(CrossRegion::Home);
    }
    Ok(
        match tx
            .query_opt(
                "select f.filing_id, t.ratio_reduction from filings f
                 join cross_region_terms t on t.filing_type = f.filing_type
                 where f.person_id = $1 and f.kind = 'cross-region' and f.status = 'approved' and f.region = $2
                   and f.valid_from <= $3 and (f.valid_to is null or f.valid_to >= $3)
                 order by t.ratio_reduction, f.filed_at desc limit 1",
                &[&person, &region, &day],
            )
            .await?
        {
            Some(r) => CrossRegion::Filed {
                filing_id: r.get(0),
                reduction: r.get(1),
            },
            None => CrossRegion::Unfiled {
                region: region.to_owned(),
            },
        },
    )
}

/// The refusal of real-time settlement for unfiled care elsewhere.
pub fn unfiled_refusal(region: &str, day: NaiveDate, t: &Terms) -> HandlerError {
    reject(
        ErrorCode::NotEligible,
        "fixmedins_code",
        format!(
            "care at an institution of region {region} needs a cross-region filing 异地就医备案 for {region} valid on \
             {day}: file it with file-cross-region ({}); without one, pay in cash and claim at the agency \
             (submit-claim), reimbursed at the ordinary ratio less {}",
            CROSS_REGION_TYPES.join(", "),
            t.unfiled_ratio_reduction.normalize()
        ),
    )
}

/// An approved chronic-disease filing whose disease the diagnosis starts with, valid on `day`.
pub async fn chronic(
    tx: &Transaction<'_>,
    person: Uuid,
    dise_codg: Option<&str>,
    day: NaiveDate,
) -> Result<Option<Uuid>, HandlerError> {
    let Some(dise) = dise_codg else { return Ok(None) };
    Ok(tx
        .query_opt(
            "select filing_id from filings
             where person_id = $1 and kind = 'chronic-disease' and status = 'approved'
               and upper($2::text) like upper(disease_code) || '%'
               and valid_from <= $3 and (valid_to is null or valid_to >= $3)
             order by filed_at desc limit 1",
            &[&person, &dise, &day],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The drugs with an approved special-drug filing at `institution` on `day`, and the filings.
pub async fn special_drugs(
    tx: &Transaction<'_>,
    person: Uuid,
    institution: &str,
    day: NaiveDate,
) -> Result<Vec<(String, Uuid)>, HandlerError> {
    Ok(tx
        .query(
            "select med_list_codg, filing_id from filings
             where person_id = $1 and kind = 'special-drug' and status = 'approved' and fixmedins_code = $2
               and valid_from <= $3 and (valid_to is null or valid_to >= $3)
             order by filed_at",
            &[&person, &institution, &day],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The chronic-disease deductible a person's standing chronic settlements bore in `year`.
pub async fn chronic_deductible_used(
    tx: &Transaction<'_>,
    person: Uuid,
    insutype: &str,
    year: i32,
) -> Result<Decimal, HandlerError> {
    Ok(tx
        .query_one(
            "select coalesce(sum(act_pay_dedc), 0)::numeric(14, 2) from settlements
             where person_id = $1 and insutype = $2 and year = $3 and status = 'settled' and terms = 'chronic-disease'",
            &[&person, &insutype, &year],
        )
        .await?
        .get(0))
}

/// The days of drugs the lines give (count × days per unit, over the catalogue's drugs).
pub async fn drug_days(tx: &Transaction<'_>, lines: &[(String, Decimal)]) -> Result<Decimal, HandlerError> {
    let mut days = Decimal::ZERO;
    for (code, cnt) in lines {
        let per: Option<Decimal> = tx
            .query_opt(
                "select days_per_unit from catalogue where med_list_codg = $1",
                &[code],
            )
            .await?
            .and_then(|r| r.get(0));
        if let Some(per) = per {
            days += per * cnt;
        }
    }
    Ok(days)
}

// --- Commands.

struct Filing {
    filing_id: Uuid,
    person_id: Uuid,
    kind: String,
    filing_type: Option<String>,
    region: Option<String>,
    disease_code: Option<String>,
    disease_name: Option<String>,
    med_list_codg: Option<String>,
    fixmedins_code: Option<String>,
    valid_from: NaiveDate,
    valid_to: Option<NaiveDate>,
    procedure: String,
    status: String,
    status_reason: Option<String>,
    late: bool,
}

impl Filing {
    fn result(&self) -> f::FilingResult {
        f::FilingResult {
            filing_id: self.filing_id.to_string(),
            psn_no: self.person_id.to_string(),
            kind: self.kind.clone(),
            filing_type: self.filing_type.clone(),
            region: self.region.clone(),
            disease_code: self.disease_code.clone(),
            disease_name: self.disease_name.clone(),
            med_list_codg: self.med_list_codg.clone(),
            fixmedins_code: self.fixmedins_code.clone(),
            valid_from: self.valid_from.to_string(),
            valid_to: self.valid_to.map(|d| d.to_string()),
            procedure: self.procedure.clone(),
            status: self.status.clone(),
            status_reason: self.status_reason.clone(),
            late: self.late,
        }
    }

    fn subject(&self) -> String {
        match self.kind.as_str() {
            "cross-region" => format!(
                "{} {}",
                self.filing_type.as_deref().unwrap_or(""),
                self.region.as_deref().unwrap_or("")
            ),
            "chronic-disease" => self.disease_code.clone().unwrap_or_default(),
            _ => format!(
                "{} at {}",
                self.med_list_codg.as_deref().unwrap_or(""),
                self.fixmedins_code.as_deref().unwrap_or("")
            ),
        }
    }
}

async fn load(tx: &Transaction<'_>, id: &str) -> Result<Filing, HandlerError> {
    let filing_id = uuid("filing_id", id)?;
    let r = tx
        .query_opt(
            "select f.filing_id, f.person_id, f.kind, f.filing_type, f.region, f.disease_code, d.name, f.med_list_codg,
                    f.fixmedins_code, f.valid_from, f.valid_to, f.procedure, f.status, f.status_reason, f.late
             from filings f left join chronic_diseases d on d.disease_code = f.disease_code
             where f.filing_id = $1 for update of f",
            &[&filing_id],
        )
        .await?
        .ok_or_else(|| not_found("filing_id", "no filing with this filing_id"))?;
    Ok(Filing {
        filing_id: r.get(0),
        person_id: r.get(1),
        kind: r.get(2),
        filing_type: r.get(3),
        region: r.get(4),
        disease_code: r.get(5),
        disease_name: r.get(6),
        med_list_codg: r.get(7),
        fixmedins_code: r.get(8),
        valid_from: r.get(9),
        valid_to: r.get(10),
        procedure: r.get(11),
        status: r.get(12),
        status_reason: r.get(13),
        late: r.get(14),
    })
}

fn validity(from: &str, to: Option<&str>) -> Result<(NaiveDate, Option<NaiveDate>), HandlerError> {
    let from = date("valid_from", from)?;
    let to = to.map(|t| date("valid_to", t)).transpose()?;
    if to.is_some_and(|t| t < from) {
        return Err(invalid("valid_to", "valid_to is before valid_from"));
    }
    Ok((from, to))
}

/// A filing may not start before the day it is made, except a cross-region filing made late
/// 补登记 for care inside a settlement stop (`late`: the stop allows it).
fn not_backdated(from: NaiveDate, today: NaiveDate, what: &str) -> Result<(), HandlerError> {
    if from < today {
        return Err(conflict(
            "valid_from",
            format!(
                "a {what} filing starts on the day it is made ({today}) or later, not {from}; care already given \
                 is reimbursed through a claim at the agency (submit-claim)"
            ),
        ));
    }
    Ok(())
}

/// Whether a cross-region filing from `from` (before today) may be made now as a late filing:
/// `from` inside a settlement stop of the freeze orders, and now within the late-filing
/// window after the stop ended.
fn late_filing(
    h: &BenefitsHandler,
    msg: &Incoming,
    from: NaiveDate,
    window_days: i32,
) -> Result<(), HandlerError> {
    let stops = crate::claims::settlement_stops(h.freeze.get());
    let day_of = |t: chrono::DateTime<Utc>| t.with_timezone(&cst()).date_naive();
    let inside: Vec<_> = stops
        .iter()
        .filter(|(s, e)| day_of(*s) <= from && from <= day_of(*e))
        .collect();
    if inside.is_empty() {
        return Err(conflict(
            "valid_from",
            format!(
                "{from} is before today and inside no settlement stop: a cross-region filing is not made \
                 retroactively (补登记 is only for care during a settlement stop); claim the care in cash at \
                 the agency (submit-claim)"
            ),
        ));
    }
    let window = chrono::Duration::days(i64::from(window_days));
    if inside.iter().any(|(_, e)| msg.received_at < *e + window) {
        return Ok(());
    }
    let (_, end) = inside[0];
    Err(conflict(
        "valid_from",
        format!(
            "the late-filing window 补登记 for the settlement stop that ended {} closed after {window_days} days: \
             claim the care in cash at the agency (submit-claim)",
            end.with_timezone(&cst()).to_rfc3339()
        ),
    ))
}

async fn insert(
    tx: &Transaction<'_>,
    x: &Filing,
    documents: &[String],
    at: chrono::DateTime<Utc>,
) -> Result<(), HandlerError> {
    tx.execute(
        "insert into filings (filing_id, person_id, kind, filing_type, region, disease_code, med_list_codg,
             fixmedins_code, valid_from, valid_to, procedure, status, late, documents, filed_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)",
        &[
            &x.filing_id,
            &x.person_id,
            &x.kind,
            &x.filing_type,
            &x.region,
            &x.disease_code,
            &x.med_list_codg,
            &x.fixmedins_code,
            &x.valid_from,
            &x.valid_to,
            &x.procedure,
            &x.status,
            &x.late,
            &serde_json::to_value(documents).expect("serialises"),
            &at,
        ],
    )
    .await?;
    Ok(())
}

fn recorded(h: &BenefitsHandler, x: &Filing, msg: &Incoming) -> Vec<Outgoing> {
    let at = msg.received_at.with_timezone(&cst());
    let mut out = vec![h.event(
        &f::FilingRecorded {
            filing_id: x.filing_id.to_string(),
            psn_no: x.person_id.to_string(),
            kind: x.kind.clone(),
            procedure: x.procedure.clone(),
            status: x.status.clone(),
            valid_from: x.valid_from.to_string(),
            valid_to: x.valid_to.map(|d| d.to_string()),
            subject: x.subject(),
            late: x.late,
            at,
        },
        msg,
    )];
    if x.status == "approved" {
        out.push(h.event(
            &f::FilingApproved {
                filing_id: x.filing_id.to_string(),
                psn_no: x.person_id.to_string(),
                kind: x.kind.clone(),
                by: "simple".into(),
                at,
            },
            msg,
        ));
    }
    out
}

fn today(msg: &Incoming) -> NaiveDate {
    msg.received_at.with_timezone(&cst()).date_naive()
}

pub async fn file_cross_region(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: f::FileCrossRegion = msg.decode()?;
    let person = person_of(tx, &cmd.psn_no).await?;
    if !CROSS_REGION_TYPES.contains(&cmd.filing_type.as_str()) {
        return Err(invalid(
            "filing_type",
            format!(
                "'{}' is not a cross-region filing type ({})",
                cmd.filing_type,
                CROSS_REGION_TYPES.join(", ")
            ),
        ));
    }
    if cmd.region.len() != 6 || !cmd.region.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "region",
            format!("'{}' is not a region code (6 digits, e.g. 370100)", cmd.region),
        ));
    }
    let home = home_region(tx).await?;
    if cmd.region == home {
        return Err(invalid(
            "region",
            format!("{home} is the insured region: care here needs no cross-region filing"),
        ));
    }
    // A referral 转外就医 names the referring institution (a designated one of the insured region).
    let referred_by = match (cmd.filing_type.as_str(), cmd.referred_by) {
        ("referral", None) => {
            return Err(invalid(
                "referred_by",
                "a referral names the referring institution (fixmedins_code)",
            ));
        }
        ("referral", Some(r)) => match institution(tx, &r).await? {
            Some((_, region)) if region == home => Some(r),
            Some(_) => {
                return Err(invalid(
                    "referred_by",
                    format!("{r} is not an institution of the insured region {home}"),
                ));
            }
            None => return Err(not_found("referred_by", "not a designated institution")),
        },
        (_, Some(_)) => {
            return Err(invalid(
                "referred_by",
                "only a referral names a referring institution",
            ));
        }
        (_, None) => None,
    };
    let (from, to) = validity(&cmd.valid_from, cmd.valid_to.as_deref())?;
    let late = from < today(msg);
    if late {
        // Terms of the employee type carry the window (the seed gives both types the same).
        let window: i32 = tx
            .query_one("select min(late_filing_days) from filing_terms", &[])
            .await?
            .get::<_, Option<i32>>(0)
            .unwrap_or(0);
        late_filing(h, msg, from, window)?;
    }
    let x = Filing {
        filing_id: Uuid::now_v7(),
        person_id: person.person_id,
        kind: "cross-region".into(),
        filing_type: Some(cmd.filing_type),
        region: Some(cmd.region),
        disease_code: None,
        disease_name: None,
        med_list_codg: None,
        fixmedins_code: referred_by,
        valid_from: from,
        valid_to: to,
        procedure: "simple".into(),
        status: "approved".into(),
        status_reason: None,
        late,
    };
    insert(tx, &x, &[], msg.received_at).await?;
    ok(&x.result(), recorded(h, &x, msg))
}

pub async fn file_chronic_disease(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: f::FileChronicDisease = msg.decode()?;
    let person = person_of(tx, &cmd.psn_no).await?;
    let code = cmd.disease_code.trim().to_uppercase();
    let Some(d) = tx
        .query_opt(
            "select disease_code, name, full_review from chronic_diseases where upper(disease_code) = $1",
            &[&code],
        )
        .await?
    else {
        let list: Vec<String> = tx
            .query(
                "select disease_code from chronic_diseases order by disease_code",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        return Err(invalid(
            "disease_code",
            format!(
                "'{}' is not an outpatient chronic or special disease of the policy ({})",
                cmd.disease_code,
                list.join(", ")
            ),
        ));
    };
    let (from, to) = validity(&cmd.valid_from, cmd.valid_to.as_deref())?;
    not_backdated(from, today(msg), "chronic-disease")?;
    let full: bool = d.get(2);
    if tx
        .query_opt(
            "select 1 from filings where person_id = $1 and kind = 'chronic-disease' and disease_code = $2
               and status in ('submitted', 'approved') and (valid_to is null or valid_to >= $3)",
            &[&person.person_id, &d.get::<_, String>(0), &from],
        )
        .await?
        .is_some()
    {
        return Err(conflict(
            "disease_code",
            "a filing for this disease is already submitted or in force",
        ));
    }
    let x = Filing {
        filing_id: Uuid::now_v7(),
        person_id: person.person_id,
        kind: "chronic-disease".into(),
        filing_type: None,
        region: None,
        disease_code: Some(d.get(0)),
        disease_name: Some(d.get(1)),
        med_list_codg: None,
        fixmedins_code: None,
        valid_from: from,
        valid_to: to,
        procedure: if full { "full-review" } else { "simple" }.into(),
        status: if full { "submitted" } else { "approved" }.into(),
        status_reason: None,
        late: false,
    };
    insert(tx, &x, &cmd.documents, msg.received_at).await?;
    ok(&x.result(), recorded(h, &x, msg))
}

pub async fn file_special_drug(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: f::FileSpecialDrug = msg.decode()?;
    let person = person_of(tx, &cmd.psn_no).await?;
    let in_scope: Option<bool> = tx
        .query_opt(
            "select in_scope from catalogue where med_list_codg = $1",
            &[&cmd.med_list_codg],
        )
        .await?
        .map(|r| r.get(0));
    match in_scope {
        None => {
            return Err(not_found(
                "med_list_codg",
                format!("'{}' is not in the catalogue", cmd.med_list_codg),
            ));
        }
        Some(false) => {
            return Err(invalid(
                "med_list_codg",
                format!(
                    "'{}' is outside the catalogue's scope: the fund pays no part of it",
                    cmd.med_list_codg
                ),
            ));
        }
        Some(true) => {}
    }
    institution(tx, &cmd.fixmedins_code)
        .await?
        .ok_or_else(|| not_found("fixmedins_code", "not a designated institution"))?;
    let (from, to) = validity(&cmd.valid_from, cmd.valid_to.as_deref())?;
    not_backdated(from, today(msg), "special-drug")?;
    let x = Filing {
        filing_id: Uuid::now_v7(),
        person_id: person.person_id,
        kind: "special-drug".into(),
        filing_type: None,
        region: None,
        disease_code: None,
        disease_name: None,
        med_list_codg: Some(cmd.med_list_codg),
        fixmedins_code: Some(cmd.fixmedins_code),
        valid_from: from,
        valid_to: to,
        procedure: "simple".into(),
        status: "approved".into(),
        status_reason: None,
        late: false,
    };
    insert(tx, &x, &[], msg.received_at).await?;
    ok(&x.result(), recorded(h, &x, msg))
}

pub async fn review(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: f::ReviewFiling = msg.decode()?;
    if cmd.reviewer.trim().is_empty() {
        return Err(invalid("reviewer", "the reviewer is required"));
    }
    let reason = cmd.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let to = match cmd.action.as_str() {
        "approve" => "approved",
        "reject" if reason.is_some() => "rejected",
        "reject" => return Err(invalid("reason", "to reject a filing the reason is required")),
        other => {
            return Err(invalid(
                "action",
                format!("'{other}' is not a review step (approve, reject)"),
            ));
        }
    };
    let mut x = load(tx, &cmd.filing_id).await?;
    if x.status != "submitted" {
        return Err(conflict(
            "filing_id",
            format!(
                "the filing is {} ({} procedure): only a submitted filing is reviewed",
                x.status, x.procedure
            ),
        ));
    }
    x.status = to.into();
    x.status_reason = reason.map(str::to_owned);
    tx.execute(
        "update filings set status = $2, status_reason = $3, reviewer = $4, updated_at = $5 where filing_id = $1",
        &[&x.filing_id, &x.status, &x.status_reason, &cmd.reviewer, &msg.received_at],
    )
    .await?;
    let at = msg.received_at.with_timezone(&cst());
    let e = if to == "approved" {
        h.event(
            &f::FilingApproved {
                filing_id: x.filing_id.to_string(),
                psn_no: x.person_id.to_string(),
                kind: x.kind.clone(),
                by: cmd.reviewer.clone(),
                at,
            },
            msg,
        )
    } else {
        h.event(
            &f::FilingRejected {
                filing_id: x.filing_id.to_string(),
                psn_no: x.person_id.to_string(),
                kind: x.kind.clone(),
                reviewer: cmd.reviewer.clone(),
                reason: reason.unwrap_or_default().to_owned(),
                at,
            },
            msg,
        )
    };
    ok(&x.result(), vec![e])
}

pub async fn revoke(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: f::RevokeFiling = msg.decode()?;
    let reason = cmd.reason.trim();
    if reason.is_empty() {
        return Err(invalid("reason", "the reason is required"));
    }
    let mut x = load(tx, &cmd.filing_id).await?;
    if !["submitted", "approved"].contains(&x.status.as_str()) {
        return Err(conflict(
            "filing_id",
            format!("the filing is {}: nothing to revoke", x.status),
        ));
    }
    x.status = "revoked".into();
    x.status_reason = Some(reason.to_owned());
    tx.execute(
        "update filings set status = 'revoked', status_reason = $2, updated_at = $3 where filing_id = $1",
        &[&x.filing_id, &x.status_reason, &msg.received_at],
    )
    .await?;
    let e = h.event(
        &f::FilingRevoked {
            filing_id: x.filing_id.to_string(),
            psn_no: x.person_id.to_string(),
            kind: x.kind.clone(),
            reason: reason.to_owned(),
            at: msg.received_at.with_timezone(&cst()),
        },
        msg,
    );
    ok(&x.result(), vec![e])
}

pub async fn status(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: f::FilingQuery = msg.decode()?;
    ok(&load(tx, &cmd.filing_id).await?.result(), vec![])
}

/// `filing:<id>` for the results.
pub fn names(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(|i| format!("filing:{i}")).collect()
}

/// The ratio less a reduction, never below 0.
pub fn reduced(ratio: Decimal, reduction: Decimal) -> Decimal {
    (ratio - reduction).max(Decimal::ZERO)
}

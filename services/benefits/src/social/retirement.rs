//! Retirement 退休审核 (issue 10 §5): an application, then its review. Approval judges the
//! legal age (from the ID number's birth date and gender digit, and the position for a
//! woman) and the contribution years (the social projection: months paid here plus those a
//! transfer carried over) against policy data; a refusal on the rules is recorded as a
//! rejection with its specific reason (an event like any other step). An approval computes
//! the pension (`domain::retirement::pension`), decides the first month paid
//! (`domain::retirement::start`: in time, Wuhan's back-pay after the stop, Hangzhou's July
//! 2020 retirees) and grants the award the monthly run pays.

use super::projection;
use crate::domain::money::text;
use crate::domain::retirement::{self as rules, Formula, Gender, StartRule};
use crate::handlers::{BenefitsHandler, HResult, conflict, cst, invalid, not_found, ok, time, uuid};
use crate::store;
use contracts::InsuranceType;
use contracts::benefits::social as s;
use contracts::ids::IdNumber;
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming};
use uuid::Uuid;

const POSITIONS: [&str; 2] = ["worker", "cadre"];

struct Application {
    application_id: Uuid,
    person_id: Uuid,
    id_number: String,
    gender: String,
    position: String,
    retirement_age: i32,
    reaches_age_on: chrono::NaiveDate,
    applied_at: chrono::DateTime<chrono::Utc>,
    status: String,
    contribution_months: i32,
    minimum_months: i32,
    reason_code: Option<String>,
    reason: Option<String>,
    pension: Option<s::PensionFigures>,
    from_month: Option<chrono::NaiveDate>,
    start_rule: Option<String>,
    award_id: Option<Uuid>,
}

impl Application {
    fn result(&self) -> s::RetirementResult {
        s::RetirementResult {
            application_id: self.application_id.to_string(),
            psn_no: self.person_id.to_string(),
            certno: IdNumber::parse(&self.id_number).map_or_else(|_| "****".into(), |i| i.masked()),
            status: self.status.clone(),
            gender: self.gender.clone(),
            position: self.position.clone(),
            retirement_age: self.retirement_age,
            reaches_age_on: self.reaches_age_on,
            applied_at: self.applied_at.with_timezone(&cst()),
            contribution_months: self.contribution_months,
            minimum_months: self.minimum_months,
            reason_code: self.reason_code.clone(),
            reason: self.reason.clone(),
            pension: self.pension.clone(),
            from_month: self.from_month.map(|m| m.format("%Y-%m").to_string()),
            start_rule: self.start_rule.clone(),
            award_id: self.award_id.map(|a| a.to_string()),
        }
    }
}

async fn load(tx: &Transaction<'_>, id: &str) -> Result<Application, HandlerError> {
    let application_id = uuid("application_id", id)?;
    let r = tx
        .query_opt(
            "select a.application_id, a.person_id, a.id_number, a.gender, a.position, a.retirement_age,
                    a.reaches_age_on, a.applied_at, a.status, a.contribution_months, a.minimum_months,
                    a.reason_code, a.reason, a.pension, a.from_month, a.start_rule,
                    (select award_id from benefit_awards w where w.source_ref = a.application_id::text)
             from retirement_applications a where a.application_id = $1 for update",
            &[&application_id],
        )
        .await?
        .ok_or_else(|| not_found("application_id", "no retirement application with this id"))?;
    let pension: Option<serde_json::Value> = r.get(13);
    Ok(Application {
        application_id: r.get(0),
        person_id: r.get(1),
        id_number: r.get(2),
        gender: r.get(3),
        position: r.get(4),
        retirement_age: r.get(5),
        reaches_age_on: r.get(6),
        applied_at: r.get(7),
        status: r.get(8),
        contribution_months: r.get(9),
        minimum_months: r.get(10),
        reason_code: r.get(11),
        reason: r.get(12),
        pension: pension.and_then(|p| serde_json::from_value(p).ok()),
        from_month: r.get(14),
        start_rule: r.get(15),
        award_id: r.get(16),
    })
}

struct PensionPolicy {
    policy_id: i64,
    formula: Formula,
    minimum_months: i32,
    grace_months: i32,
}

async fn policy(tx: &Transaction<'_>, day: chrono::NaiveDate) -> Result<PensionPolicy, HandlerError> {
    let r = tx
        .query_opt(
            "select policy_id, average_wage, contribution_index, rate_per_year, minimum_months, grace_months
             from pension_policies where effective_from <= $1 order by effective_from desc limit 1",
            &[&day],
        )
        .await?
        .ok_or_else(|| not_found("application_id", format!("no pension policy in force on {day}")))?;
    Ok(PensionPolicy {
        policy_id: r.get(0),
        formula: Formula {
            average_wage: r.get(1),
            contribution_index: r.get(2),
            rate_per_year: r.get(3),
        },
        minimum_months: r.get(4),
        grace_months: r.get(5),
    })
}

pub async fn apply(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::ApplyRetirement = msg.decode()?;
    let id = IdNumber::parse(&cmd.id_number).map_err(|e| invalid("id_number", e.to_string()))?;
    if !POSITIONS.contains(&cmd.position.as_str()) {
        return Err(invalid(
            "position",
            format!("'{}' is not a position (worker, cadre)", cmd.position),
        ));
    }
    let applied_at = match &cmd.applied_at {
        Some(t) => time("applied_at", t)?.with_timezone(&chrono::Utc),
        None => msg.received_at,
    };
    if applied_at > msg.received_at {
        return Err(invalid(
            "applied_at",
            "an application cannot be received in the future",
        ));
    }
    let person = store::person_by_id_number(tx, id.as_str())
        .await?
        .ok_or_else(|| {
            not_found(
                "id_number",
                "benefits knows no person with this ID number (enrolled in pension insurance?)",
            )
        })?;
    let gender = Gender::of_id_number(id.as_str())
        .ok_or_else(|| invalid("id_number", "an 18-character ID number carries the gender"))?;
    let day = applied_at.with_timezone(&cst()).date_naive();
    let age: i32 = tx
        .query_opt(
            "select age from retirement_ages where gender = $1 and position = $2 and effective_from <= $3
             order by effective_from desc limit 1",
            &[&gender.as_str(), &cmd.position, &day],
        )
        .await?
        .ok_or_else(|| not_found("position", format!("no retirement age in force on {day}")))?
        .get(0);
    let minimum: i32 = policy(tx, day).await?.minimum_months;
    let reaches = rules::reaches_age_on(id.birth_date(), age);
    let application_id = Uuid::now_v7();
    let inserted = tx
        .execute(
            "insert into retirement_applications (application_id, person_id, id_number, gender, position,
                 retirement_age, reaches_age_on, applied_at, status, minimum_months)
             values ($1, $2, $3, $4, $5, $6, $7, $8, 'applied', $9) on conflict do nothing",
            &[
                &application_id,
                &person.person_id,
                &id.as_str(),
                &gender.as_str(),
                &cmd.position,
                &age,
                &reaches,
                &applied_at,
                &minimum,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(conflict(
            "id_number",
            "this person already has a retirement application under review or approved",
        ));
    }
    let app = load(tx, &application_id.to_string()).await?;
    let event = h.social_event(
        &s::RetirementApplied {
            application_id: application_id.to_string(),
            psn_no: person.person_id.to_string(),
            id_number: id.as_str().to_owned(),
            position: cmd.position,
            applied_at: applied_at.with_timezone(&cst()),
        },
        msg,
    );
    ok(&app.result(), vec![event])
}

/// The pension start rules, with each freeze window's end as this service holds the order
/// (its `ends_at`, or when it was lifted).
async fn start_rules(tx: &Transaction<'_>) -> Result<Vec<StartRule>, HandlerError> {
    let orders = messaging::freeze::store::load(tx)
        .await
        .map_err(|e| HandlerError::Transient(anyhow::Error::new(e)))?;
    let rows = tx
        .query(
            "select rule_id, kind, freeze_order_id, window_months, retirement_month, apply_before
             from pension_start_rules order by rule_id",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.get(0);
        match r.get::<_, String>(1).as_str() {
            "freeze-window" => {
                let order_id: String = r.get(2);
                let Some(order) = orders
                    .iter()
                    .find(|o| o.order.id == order_id)
                    .and_then(|o| o.effective())
                else {
                    continue;
                };
                let window: i32 = r.get(3);
                out.push(StartRule::FreezeWindow {
                    id,
                    starts_at: order.starts_at.with_timezone(&chrono::Utc),
                    ended_at: order.ends_at.map(|t| t.with_timezone(&chrono::Utc)),
                    window_months: u32::try_from(window).unwrap_or(0),
                });
            }
            _ => {
                let m: chrono::NaiveDate = r.get(4);
                out.push(StartRule::ApplyBy {
                    id,
                    retirement_month: rules::month_of(m),
                    apply_before: r.get(5),
                });
            }
        }
    }
    Ok(out)
}

pub async fn review(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::ReviewRetirement = msg.decode()?;
    if !["approve", "reject"].contains(&cmd.action.as_str()) {
        return Err(invalid(
            "action",
            format!("'{}' is not a review step (approve, reject)", cmd.action),
        ));
    }
    if cmd.reviewer.trim().is_empty() {
        return Err(invalid("reviewer", "the reviewer is required"));
    }
    let given = cmd.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if cmd.action == "reject" && given.is_none() {
        return Err(invalid(
            "reason",
            "to reject an application the reason is required",
        ));
    }
    let mut app = load(tx, &cmd.application_id).await?;
    if app.status != "applied" {
        return Err(conflict(
            "application_id",
            format!("the application is {}: its review is over", app.status),
        ));
    }
    let at = msg.received_at;
    let day = at.with_timezone(&cst()).date_naive();
    let pol = policy(tx, day).await?;
    let (months, balance) = projection::contributions(tx, app.person_id, InsuranceType::Pension).await?;
    app.contribution_months = months;
    app.minimum_months = pol.minimum_months;
    let judged = if cmd.action == "reject" {
        Err(("reviewer".to_owned(), given.unwrap_or_default().to_owned()))
    } else {
        let enrolled = projection::enrolled(tx, app.person_id, InsuranceType::Pension).await?;
        rules::judge(app.reaches_age_on, day, enrolled, months, pol.minimum_months)
            .map_err(|r| (r.code().to_owned(), r.reason(app.retirement_age)))
    };
    let mut out = Vec::new();
    match judged {
        Err((code, reason)) => {
            app.status = "rejected".into();
            app.reason_code = Some(code.clone());
            app.reason = Some(reason.clone());
            out.push(h.social_event(
                &s::RetirementRejected {
                    application_id: app.application_id.to_string(),
                    psn_no: app.person_id.to_string(),
                    id_number: app.id_number.clone(),
                    reason_code: code,
                    reason,
                    reviewer: cmd.reviewer.clone(),
                    at: at.with_timezone(&cst()),
                },
                msg,
            ));
        }
        Ok(()) => {
            let divisor: i32 = tx
                .query_opt(
                    "select months from pension_divisors where age = $1",
                    &[&app.retirement_age],
                )
                .await?
                .ok_or_else(|| {
                    not_found(
                        "application_id",
                        format!("no 计发月数 for retirement at {}", app.retirement_age),
                    )
                })?
                .get(0);
            let p = rules::pension(&pol.formula, months, balance, divisor);
            let figures = s::PensionFigures {
                average_wage: text(pol.formula.average_wage),
                contribution_index: pol.formula.contribution_index.round_dp(4).to_string(),
                contribution_months: months,
                basic_pension: text(p.basic),
                account_balance: text(balance),
                divisor_months: divisor,
                account_pension: text(p.account),
                monthly_pension: text(p.monthly),
                policy_id: pol.policy_id,
            };
            let start = rules::start(
                app.reaches_age_on,
                app.applied_at,
                at,
                u32::try_from(pol.grace_months).unwrap_or(0),
                &start_rules(tx).await?,
            );
            let award_id = Uuid::now_v7();
            tx.execute(
                "insert into benefit_awards (award_id, person_id, id_number, kind, monthly_amount, from_month,
                     source_ref, granted_at)
                 values ($1, $2, $3, 'pension', $4, $5, $6, $7)",
                &[
                    &award_id,
                    &app.person_id,
                    &app.id_number,
                    &p.monthly,
                    &start.from.first_day(),
                    &app.application_id.to_string(),
                    &at,
                ],
            )
            .await?;
            app.status = "approved".into();
            app.pension = Some(figures.clone());
            app.from_month = Some(start.from.first_day());
            app.start_rule = Some(start.rule.clone());
            app.award_id = Some(award_id);
            out.push(h.social_event(
                &s::RetirementApproved {
                    application_id: app.application_id.to_string(),
                    award_id: award_id.to_string(),
                    psn_no: app.person_id.to_string(),
                    id_number: app.id_number.clone(),
                    reaches_age_on: app.reaches_age_on,
                    from_month: start.from.as_string(),
                    start_rule: start.rule.clone(),
                    pension: figures,
                    reviewer: cmd.reviewer.clone(),
                    at: at.with_timezone(&cst()),
                },
                msg,
            ));
            out.push(h.social_event(
                &s::BenefitAwarded {
                    award_id: award_id.to_string(),
                    psn_no: app.person_id.to_string(),
                    id_number: app.id_number.clone(),
                    kind: "pension".into(),
                    monthly_amount: text(p.monthly),
                    from_month: start.from.as_string(),
                    to_month: None,
                    source_ref: app.application_id.to_string(),
                },
                msg,
            ));
        }
    }
    tx.execute(
        "update retirement_applications set status = $2, contribution_months = $3, minimum_months = $4,
             reason_code = $5, reason = $6, pension = $7, from_month = $8, start_rule = $9, reviewer = $10,
             reviewed_at = $11
         where application_id = $1",
        &[
            &app.application_id,
            &app.status,
            &app.contribution_months,
            &app.minimum_months,
            &app.reason_code,
            &app.reason,
            &app.pension
                .as_ref()
                .map(|p| serde_json::to_value(p).expect("figures serialise")),
            &app.from_month,
            &app.start_rule,
            &cmd.reviewer,
            &at,
        ],
    )
    .await?;
    ok(&app.result(), out)
}

pub async fn status(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::RetirementQuery = msg.decode()?;
    ok(&load(tx, &cmd.application_id).await?.result(), vec![])
}

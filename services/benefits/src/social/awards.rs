//! Unemployment benefit 失业保险金 and periodic work-injury benefit 工伤定期待遇 awards, kept
//! simple (issue 10 §5): the decision's monthly amount for its months, checked against the
//! person's insurance in the social projection and, for unemployment, the months their
//! contribution years entitle to (policy data, `unemployment_entitlements`).

use super::{month, projection};
use crate::domain::money::text;
use crate::handlers::{BenefitsHandler, HResult, conflict, invalid, money, not_found, ok, reject};
use crate::store;
use contracts::benefits::social as s;
use contracts::ids::IdNumber;
use contracts::{ErrorCode, InsuranceType};
use deadpool_postgres::Transaction;
use messaging::Incoming;
use uuid::Uuid;

pub async fn grant(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::GrantBenefit = msg.decode()?;
    let id = IdNumber::parse(&cmd.id_number).map_err(|e| invalid("id_number", e.to_string()))?;
    let t = match cmd.kind.as_str() {
        "unemployment" => InsuranceType::Unemployment,
        "work-injury" => InsuranceType::WorkInjury,
        other => {
            return Err(invalid(
                "kind",
                format!(
                    "'{other}' is not an award granted here (unemployment, work-injury; a pension comes with retirement)"
                ),
            ));
        }
    };
    let amount = money("monthly_amount", &cmd.monthly_amount)?;
    if amount.is_zero() {
        return Err(invalid("monthly_amount", "a monthly amount above 0.00"));
    }
    let from = month("from_month", &cmd.from_month)?;
    let to = cmd
        .to_month
        .as_deref()
        .map(|m| month("to_month", m))
        .transpose()?;
    if to.is_some_and(|to| to < from) {
        return Err(invalid("to_month", "the last month is before the first"));
    }
    if cmd.decision_ref.trim().is_empty() {
        return Err(invalid("decision_ref", "the decision's reference is required"));
    }
    if cmd.reviewer.trim().is_empty() {
        return Err(invalid("reviewer", "the reviewer is required"));
    }
    let person = store::person_by_id_number(tx, id.as_str())
        .await?
        .ok_or_else(|| not_found("id_number", "benefits knows no person with this ID number"))?;
    if !projection::enrolled(tx, person.person_id, t).await? {
        return Err(reject(
            ErrorCode::NotEligible,
            "kind",
            format!("the person has never been enrolled in {t}"),
        ));
    }
    let mut entitled = None;
    if t == InsuranceType::Unemployment {
        let Some(to) = to else {
            return Err(invalid("to_month", "an unemployment benefit has a last month"));
        };
        let (months, _) = projection::contributions(tx, person.person_id, t).await?;
        let allowed: Option<i32> = tx
            .query_opt(
                "select benefit_months from unemployment_entitlements where minimum_months <= $1
                 order by minimum_months desc limit 1",
                &[&months],
            )
            .await?
            .map(|r| r.get(0));
        let Some(allowed) = allowed else {
            return Err(reject(
                ErrorCode::NotEligible,
                "kind",
                format!("{months} unemployment contribution months: at least one year is required"),
            ));
        };
        let asked = (to.year() - from.year()) * 12 + i32::try_from(to.month()).unwrap_or(0)
            - i32::try_from(from.month()).unwrap_or(0)
            + 1;
        if asked > allowed {
            return Err(invalid(
                "to_month",
                format!("{months} contribution months entitle to {allowed} months of benefit, not {asked}"),
            ));
        }
        entitled = Some(allowed);
    }
    // One award of a kind for a month: a second decision over the same months would pay twice.
    let overlapping = tx
        .query_opt(
            "select from_month, to_month from benefit_awards
             where person_id = $1 and kind = $2 and daterange(from_month, to_month, '[]') && daterange($3, $4, '[]')
             limit 1",
            &[&person.person_id, &cmd.kind, &from.first_day(), &to.map(|m| m.first_day())],
        )
        .await?;
    if let Some(r) = overlapping {
        let (f, t): (chrono::NaiveDate, Option<chrono::NaiveDate>) = (r.get(0), r.get(1));
        return Err(conflict(
            "from_month",
            format!(
                "a {} award already covers {} to {}",
                cmd.kind,
                f.format("%Y-%m"),
                t.map_or_else(|| "further notice".to_owned(), |t| t.format("%Y-%m").to_string())
            ),
        ));
    }
    let award_id = Uuid::now_v7();
    tx.execute(
        "insert into benefit_awards (award_id, person_id, id_number, kind, monthly_amount, from_month, to_month,
             source_ref, granted_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &award_id,
            &person.person_id,
            &id.as_str(),
            &cmd.kind,
            &amount,
            &from.first_day(),
            &to.map(|m| m.first_day()),
            &cmd.decision_ref,
            &msg.received_at,
        ],
    )
    .await?;
    let result = s::AwardResult {
        award_id: award_id.to_string(),
        psn_no: person.person_id.to_string(),
        certno: id.masked(),
        kind: cmd.kind.clone(),
        monthly_amount: text(amount),
        from_month: from.as_string(),
        to_month: to.map(|m| m.as_string()),
        entitled_months: entitled,
    };
    let event = h.social_event(
        &s::BenefitAwarded {
            award_id: award_id.to_string(),
            psn_no: person.person_id.to_string(),
            id_number: id.as_str().to_owned(),
            kind: cmd.kind,
            monthly_amount: text(amount),
            from_month: from.as_string(),
            to_month: to.map(|m| m.as_string()),
            source_ref: cmd.decision_ref,
        },
        msg,
    );
    ok(&result, vec![event])
}

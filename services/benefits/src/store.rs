//! Reading the projection, the policy tables and the ledger, inside the consumer's
//! transaction.

use crate::domain::eligibility::{self, Block, Category, Facts, Period, Reason};
use crate::domain::split::CatalogueItem;
use contracts::InsuranceType;
use deadpool_postgres::Transaction;
use messaging::HandlerError;
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use uuid::Uuid;

pub struct Person {
    pub person_id: Uuid,
    pub id_number: String,
    pub name: String,
    pub category: String,
}

pub async fn person_by_id(tx: &Transaction<'_>, id: Uuid) -> Result<Option<Person>, HandlerError> {
    let row = tx
        .query_opt(
            "select person_id, id_number, name, category from persons where person_id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| Person {
        person_id: r.get(0),
        id_number: r.get(1),
        name: r.get(2),
        category: r.get(3),
    }))
}

pub async fn person_by_id_number(
    tx: &Transaction<'_>,
    id_number: &str,
) -> Result<Option<Person>, HandlerError> {
    let row = tx
        .query_opt(
            "select person_id from persons where id_number = $1",
            &[&id_number],
        )
        .await?;
    match row {
        Some(r) => person_by_id(tx, r.get(0)).await,
        None => Ok(None),
    }
}

/// Locks persons' rows for a change of their accounts and annual totals, in one order
/// (smallest id first) so two settlements drawing on each other's accounts cannot deadlock.
pub async fn lock_persons(tx: &Transaction<'_>, ids: &[Uuid]) -> Result<(), HandlerError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    tx.execute(
        "select 1 from persons where person_id = any($1) order by person_id for update",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// The facts eligibility is judged from, for one person and insurance type.
pub async fn facts(tx: &Transaction<'_>, person: Uuid, t: InsuranceType) -> Result<Facts, HandlerError> {
    let p = tx
        .query_one(
            "select category, minimum_years_met, first_enrollment from persons where person_id = $1",
            &[&person],
        )
        .await?;
    let periods = tx
        .query(
            "select from_month, to_month, end_reason from enrollments
             where person_id = $1 and insurance_type = $2 order by from_month",
            &[&person, &t.as_str()],
        )
        .await?
        .iter()
        .map(|r| Period {
            from: r.get(0),
            to: r.get(1),
            end_reason: r.get(2),
        })
        .collect();
    let paid: BTreeSet<chrono::NaiveDate> = tx
        .query(
            "select month from paid_months where person_id = $1 and insurance_type = $2",
            &[&person, &t.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let blocks = tx
        .query(
            "select affected_from, restored_from from arrears where person_id = $1",
            &[&person],
        )
        .await?
        .iter()
        .map(|r| Block {
            from: r.get(0),
            until: r.get(1),
        })
        .collect();
    Ok(Facts {
        category: Category::parse(&p.get::<_, String>(0)),
        minimum_years_met: p.get(1),
        first_enrollment: p.get(2),
        periods,
        paid,
        blocks,
    })
}

pub async fn judge(
    tx: &Transaction<'_>,
    person: Uuid,
    t: InsuranceType,
    day: chrono::NaiveDate,
) -> Result<Result<(), Reason>, HandlerError> {
    Ok(eligibility::judge(&facts(tx, person, t).await?, t, day))
}

/// The medical insurance types a person has ever been enrolled in.
pub async fn enrolled_types(
    tx: &Transaction<'_>,
    person: Uuid,
) -> Result<Vec<(InsuranceType, String, Option<String>, bool)>, HandlerError> {
    // (type, first month, end reason of the latest period, latest period open)
    let rows = tx
        .query(
            "select insurance_type, min(from_month),
                    (array_agg(end_reason order by from_month desc))[1],
                    bool_or(to_month is null or to_month >= date_trunc('month', now())::date)
             from enrollments where person_id = $1 group by insurance_type order by insurance_type",
            &[&person],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let t: InsuranceType = r.get::<_, String>(0).parse().ok()?;
            let first: chrono::NaiveDate = r.get(1);
            Some((t, first.format("%Y-%m").to_string(), r.get(2), r.get(3)))
        })
        .collect())
}

/// The personal account's balance: the sum of its ledger.
pub async fn balance(tx: &Transaction<'_>, person: Uuid) -> Result<Decimal, HandlerError> {
    Ok(tx
        .query_one(
            "select coalesce(sum(amount), 0)::numeric(14, 2) from account_entries where person_id = $1",
            &[&person],
        )
        .await?
        .get(0))
}

/// The policy in force on `day` for `insutype`, with the ratio row of `kind` and `hosp_lv`.
pub struct Policy {
    pub policy_id: i64,
    pub annual_cap: Decimal,
    pub outpatient_deductible: Decimal,
    pub large_ratio: Decimal,
    pub large_cap: Decimal,
    pub account_allowed: bool,
    pub deductible: Decimal,
    pub ratio: Decimal,
    pub claim_window_days: Option<i32>,
}

pub async fn policy(
    tx: &Transaction<'_>,
    insutype: &str,
    kind: &str,
    hosp_lv: &str,
    day: chrono::NaiveDate,
) -> Result<Option<Policy>, HandlerError> {
    let row = tx
        .query_opt(
            "select p.policy_id, p.annual_cap, p.outpatient_deductible, p.large_ratio, p.large_cap,
                    p.account_allowed, r.deductible, r.ratio, p.claim_window_days
             from benefit_policies p
             join benefit_ratios r on r.policy_id = p.policy_id and r.kind = $2 and r.hosp_lv = $3
             where p.insutype = $1 and p.superseded_by is null and p.effective_from <= $4
               and (p.effective_to is null or p.effective_to >= $4)
             order by p.effective_from desc limit 1",
            &[&insutype, &kind, &hosp_lv, &day],
        )
        .await?;
    Ok(row.map(|r| Policy {
        policy_id: r.get(0),
        annual_cap: r.get(1),
        outpatient_deductible: r.get(2),
        large_ratio: r.get(3),
        large_cap: r.get(4),
        account_allowed: r.get(5),
        deductible: r.get(6),
        ratio: r.get(7),
        claim_window_days: r.get(8),
    }))
}

/// What settlements that stand and approved claims have used of a person's year under `insutype`:
/// (ordinary outpatient deductible borne, pooled fund paid, large-amount / serious-illness
/// paid). A chronic-disease settlement's deductible is its own (`filings`).
pub async fn year_used(
    tx: &Transaction<'_>,
    person: Uuid,
    insutype: &str,
    year: i32,
) -> Result<(Decimal, Decimal, Decimal), HandlerError> {
    let r = tx
        .query_one(
            "select coalesce(sum(act_pay_dedc) filter (where kind = 'outpatient' and terms = 'ordinary'), 0)::numeric(14, 2),
                    coalesce(sum(hifp_pay), 0)::numeric(14, 2),
                    coalesce(sum(hifob_pay + hifmi_pay), 0)::numeric(14, 2)
             from (select kind, terms, act_pay_dedc, hifp_pay, hifob_pay, hifmi_pay from settlements
                   where person_id = $1 and insutype = $2 and year = $3 and status = 'settled'
                   union all
                   -- Approved reimbursement claims count like settlements (their split is fixed).
                   select kind, 'ordinary', act_pay_dedc, hifp_pay, hifob_pay, hifmi_pay from claims
                   where person_id = $1 and insutype = $2 and year = $3
                     and status in ('approved', 'paid', 'payment-failed')) used",
            &[&person, &insutype, &year],
        )
        .await?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

pub async fn catalogue(
    tx: &Transaction<'_>,
    code: &str,
) -> Result<Option<(CatalogueItem, String)>, HandlerError> {
    let row = tx
        .query_opt(
            "select in_scope, selfpay_prop, price_limit, chrgitm_lv from catalogue where med_list_codg = $1",
            &[&code],
        )
        .await?;
    Ok(row.map(|r| {
        (
            CatalogueItem {
                in_scope: r.get(0),
                selfpay_prop: r.get(1),
                price_limit: r.get(2),
            },
            r.get(3),
        )
    }))
}

/// The first relative who authorised `person` to draw on their account (family mutual aid),
/// with that account's balance.
pub async fn mutual_aid_grantor(tx: &Transaction<'_>, person: Uuid) -> Result<Option<Uuid>, HandlerError> {
    Ok(tx
        .query_opt(
            "select grantor from mutual_aid where relative = $1 and revoked_at is null
             order by authorised_at, grantor limit 1",
            &[&person],
        )
        .await?
        .map(|r| r.get(0)))
}

/// A policy override in force for a visit.
pub struct Override {
    pub id: String,
    pub finance_pays_rest: bool,
}

/// The override of highest priority whose scope holds the visit: its diagnosis (a code or
/// prefix of the override's; a visit without one matches only overrides without codes), the
/// day care began, the person, and whether the patient is insured (`self_pay`: not covered).
pub async fn policy_override(
    tx: &Transaction<'_>,
    dise_codg: Option<&str>,
    day: chrono::NaiveDate,
    id_number: &str,
    self_pay: bool,
) -> Result<Option<Override>, HandlerError> {
    let row = tx
        .query_opt(
            "select override_id, finance_pays_rest from policy_overrides
             where effective_from <= $2 and (effective_to is null or effective_to >= $2)
               and (cardinality(diagnosis_codes) = 0
                    or ($1::text is not null and exists (select 1 from unnest(diagnosis_codes) c
                                                         where upper($1::text) like c || '%')))
               and (cardinality(id_numbers) = 0 or $3 = any(id_numbers))
               and (covers_uninsured or not $4)
             order by priority desc, override_id limit 1",
            &[&dise_codg, &day, &id_number, &self_pay],
        )
        .await?;
    Ok(row.map(|r| Override {
        id: r.get(0),
        finance_pays_rest: r.get(1),
    }))
}

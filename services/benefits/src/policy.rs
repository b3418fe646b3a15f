//! `set-benefit-policy`: settlement policy as versioned data, like collection's rules. A
//! change is a new row; the row it replaces points to its successor.

use crate::handlers::{HResult, date, invalid, money, ok};
use contracts::benefits::commands as c;
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming};
use rust_decimal::Decimal;

fn ratio(field: &str, s: &str) -> Result<Decimal, HandlerError> {
    let r = crate::domain::money::parse(s, 4).map_err(|e| invalid(field, e.to_string()))?;
    if r > Decimal::ONE {
        return Err(invalid(field, "a ratio is between 0 and 1"));
    }
    Ok(r)
}

const KINDS: [&str; 2] = ["outpatient", "inpatient"];
const LEVELS: [&str; 3] = ["1", "2", "3"];

/// Inserts the version `id` with its ratio rows.
async fn insert(
    tx: &Transaction<'_>,
    id: i64,
    cmd: &c::SetBenefitPolicy,
    from: chrono::NaiveDate,
    to: Option<chrono::NaiveDate>,
    figures: [Decimal; 4],
    rows: &[(String, String, Decimal, Decimal)],
) -> Result<(), HandlerError> {
    let [cap, ded, large_ratio, large_cap] = figures;
    let window = cmd.claim_window_days.map(|d| d as i32);
    tx.execute(
        "insert into benefit_policies (policy_id, insutype, effective_from, effective_to, annual_cap,
             outpatient_deductible, large_ratio, large_cap, account_allowed, arrears_restore_retroactive, source, reason,
             claim_window_days)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &id,
            &cmd.insutype,
            &from,
            &to,
            &cap,
            &ded,
            &large_ratio,
            &large_cap,
            &cmd.account_allowed,
            &cmd.arrears_restore_retroactive,
            &cmd.source,
            &cmd.reason,
            &window,
        ],
    )
    .await?;
    for (kind, lv, deductible, r) in rows {
        tx.execute(
            "insert into benefit_ratios (policy_id, kind, hosp_lv, deductible, ratio) values ($1, $2, $3, $4, $5)",
            &[&id, kind, lv, deductible, r],
        )
        .await?;
    }
    Ok(())
}

async fn next_id(tx: &Transaction<'_>) -> Result<i64, HandlerError> {
    Ok(tx
        .query_one(
            "select nextval(pg_get_serial_sequence('benefit_policies', 'policy_id'))",
            &[],
        )
        .await?
        .get(0))
}

pub async fn set(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::SetBenefitPolicy = msg.decode()?;
    if !matches!(cmd.insutype.as_str(), "310" | "390") {
        return Err(invalid("insutype", "policies are set for 310 or 390"));
    }
    if cmd.reason.trim().is_empty() || cmd.source.trim().is_empty() {
        return Err(invalid(
            "reason",
            "a reason and a source are required for every policy change",
        ));
    }
    let from = date("effective_from", &cmd.effective_from)?;
    let to = cmd
        .effective_to
        .as_deref()
        .map(|s| date("effective_to", s))
        .transpose()?;
    if to.is_some_and(|t| t < from) {
        return Err(invalid("effective_to", "before effective_from"));
    }
    if cmd.claim_window_days.is_some_and(|d| d == 0 || d > 3660) {
        return Err(invalid("claim_window_days", "between 1 and 3660 days"));
    }
    let figures = [
        money("annual_cap", &cmd.annual_cap)?,
        money("outpatient_deductible", &cmd.outpatient_deductible)?,
        ratio("large_ratio", &cmd.large_ratio)?,
        money("large_cap", &cmd.large_cap)?,
    ];
    let mut rows = Vec::new();
    for (i, r) in cmd.ratios.iter().enumerate() {
        if !KINDS.contains(&r.kind.as_str()) || !LEVELS.contains(&r.hosp_lv.as_str()) {
            return Err(invalid(
                &format!("ratios[{i}]"),
                "kind outpatient/inpatient, hosp_lv 1/2/3",
            ));
        }
        if rows
            .iter()
            .any(|(k, l, _, _): &(String, String, Decimal, Decimal)| *k == r.kind && *l == r.hosp_lv)
        {
            return Err(invalid(&format!("ratios[{i}]"), "repeated kind and level"));
        }
        rows.push((
            r.kind.clone(),
            r.hosp_lv.clone(),
            money(&format!("ratios[{i}].deductible"), &r.deductible)?,
            ratio(&format!("ratios[{i}].ratio"), &r.ratio)?,
        ));
    }
    if rows.len() != KINDS.len() * LEVELS.len() {
        return Err(invalid(
            "ratios",
            "every kind (outpatient, inpatient) and level (1, 2, 3) exactly once",
        ));
    }
    let id = next_id(tx).await?;
    let replaced: Option<i64> = tx
        .query_opt(
            "update benefit_policies set superseded_by = $3
             where insutype = $1 and effective_from = $2 and superseded_by is null returning policy_id",
            &[&cmd.insutype, &from, &id],
        )
        .await?
        .map(|r| r.get(0));
    // An open-ended older rule ends the day before, as a new version of it.
    let older = tx
        .query_opt(
            "select policy_id, annual_cap, outpatient_deductible, large_ratio, large_cap, account_allowed,
                    arrears_restore_retroactive, source, reason, effective_from, claim_window_days
             from benefit_policies
             where insutype = $1 and effective_from < $2 and effective_to is null and superseded_by is null
             order by effective_from desc limit 1",
            &[&cmd.insutype, &from],
        )
        .await?;
    let mut closed = None;
    if let Some(o) = older {
        let old_id: i64 = o.get(0);
        let copy_id = next_id(tx).await?;
        tx.execute(
            "update benefit_policies set superseded_by = $2 where policy_id = $1",
            &[&old_id, &copy_id],
        )
        .await?;
        let copy = c::SetBenefitPolicy {
            account_allowed: o.get(5),
            arrears_restore_retroactive: o.get(6),
            source: o.get(7),
            reason: format!("{} (closed for: {})", o.get::<_, String>(8), cmd.reason),
            claim_window_days: o.get::<_, Option<i32>>(10).map(|d| d as u32),
            ..cmd.clone()
        };
        let old_rows: Vec<(String, String, Decimal, Decimal)> = tx
            .query(
                "select kind, hosp_lv, deductible, ratio from benefit_ratios where policy_id = $1",
                &[&old_id],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        insert(
            tx,
            copy_id,
            &copy,
            o.get(9),
            from.pred_opt(),
            [o.get(1), o.get(2), o.get(3), o.get(4)],
            &old_rows,
        )
        .await?;
        closed = Some(copy_id);
    }
    insert(tx, id, &cmd, from, to, figures, &rows).await?;
    ok(
        &c::SetBenefitPolicyResult {
            policy_id: id,
            insutype: cmd.insutype,
            effective_from: cmd.effective_from,
            replaced,
            closed,
        },
        vec![],
    )
}

//! Loading policy rules and the calendar from the database into domain types.

use crate::domain::calendar::Calendar;
use crate::domain::policy::PolicyRule;
use chrono::NaiveDate;
use contracts::Line;
use deadpool_postgres::GenericClient;
use messaging::HandlerError;

const RULE_COLUMNS: &str = "rule_id, jsonb_build_object(
        'region', region, 'insurance_type', insurance_type,
        'effective_from', to_char(effective_from, 'YYYY-MM'),
        'effective_to', to_char(effective_to, 'YYYY-MM'),
        'standard_base', standard_base::text, 'floor', floor::text, 'cap', cap::text,
        'employer_rate', employer_rate::text, 'employee_rate', employee_rate::text,
        'flexible_rate', flexible_rate::text, 'retiree_monthly_premium', retiree_monthly_premium::text,
        'retiree_pays_rate', retiree_pays_rate, 'deadline', deadline, 'flexible_deadline', flexible_deadline,
        'deadline_month', deadline_month, 'arrival_working_days', arrival_working_days,
        'benefits_affected_from', benefits_affected_from, 'yearly_premium', yearly_premium::text,
        'collection_period', collection_period, 'in_use_from', to_char(in_use_from, 'YYYY-MM'))";

fn decode(row: &tokio_postgres::Row) -> Result<(i64, PolicyRule), HandlerError> {
    let id: i64 = row.get(0);
    let mut json: serde_json::Value = row.get(1);
    if let Some(o) = json.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let rule = serde_json::from_value(json)
        .map_err(|e| HandlerError::Permanent(anyhow::anyhow!("policy rule {id} does not load: {e}")))?;
    Ok((id, rule))
}

/// Rules in force (not superseded) for `region`, optionally one line only.
pub async fn current(
    db: &impl GenericClient,
    region: &str,
    line: Option<Line>,
) -> Result<Vec<(i64, PolicyRule)>, HandlerError> {
    let line = line.map(|l| l.as_str().to_owned());
    let rows = db
        .query(
            &format!(
                "select {RULE_COLUMNS} from policy_rules
                 where region = $1 and superseded_by is null and ($2::text is null or line = $2)
                 order by insurance_type, effective_from"
            ),
            &[&region, &line],
        )
        .await?;
    rows.iter().map(decode).collect()
}

/// The rules of `region` that came into use after their period began (their `in_use_from`
/// month was reached, see `policy_in_use`), by insurance type and first month.
pub async fn in_use(
    db: &impl GenericClient,
    region: &str,
) -> Result<std::collections::HashSet<(String, contracts::ids::YearMonth)>, HandlerError> {
    let rows = db
        .query(
            "select insurance_type, to_char(effective_from, 'YYYY-MM') from policy_in_use where region = $1",
            &[&region],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let from: String = r.get(1);
            contracts::ids::YearMonth::parse(&from)
                .map(|m| (r.get::<_, String>(0), m))
                .map_err(|e| HandlerError::Permanent(anyhow::anyhow!("policy_in_use {from}: {e}")))
        })
        .collect()
}

/// The rule `rule` as it is applied now, of the rules in force `policy`: provisionally, with
/// the preceding rule's base figures, while it has an `in_use_from` month not yet reached
/// (`in_use` from [`in_use`]); as it is otherwise.
pub fn applied(
    policy: &[(i64, PolicyRule)],
    in_use: &std::collections::HashSet<(String, contracts::ids::YearMonth)>,
    rule: &PolicyRule,
) -> PolicyRule {
    let reached = in_use.contains(&(rule.insurance_type.as_str().to_owned(), rule.effective_from));
    if rule.in_use_from.is_none() || reached {
        return rule.clone();
    }
    rule.provisional(crate::domain::policy::preceding(
        policy.iter().map(|(_, r)| r),
        rule,
    ))
}

/// The working-day calendar (holidays and make-up working days).
pub async fn calendar(db: &impl GenericClient) -> Result<Calendar, HandlerError> {
    let rows = db.query("select day, kind from calendar_days", &[]).await?;
    let mut holidays = std::collections::BTreeSet::new();
    let mut workdays = std::collections::BTreeSet::new();
    for r in rows {
        let day: NaiveDate = r.get(0);
        let kind: String = r.get(1);
        if kind == "holiday" {
            holidays.insert(day)
        } else {
            workdays.insert(day)
        };
    }
    Calendar::new(holidays, workdays).map_err(|e| HandlerError::Permanent(anyhow::anyhow!("calendar: {e}")))
}

/// The published move of `month`'s deadline for `payer_kind` in `region`, if there is one
/// (Hangzhou July 2020, employer payers: closes 08-25).
pub async fn deadline_override(
    db: &impl GenericClient,
    region: &str,
    month: NaiveDate,
    payer_kind: &str,
) -> Result<Option<NaiveDate>, HandlerError> {
    Ok(db
        .query_opt(
            "select closes from deadline_overrides where region = $1 and month = $2 and payer_kind = $3",
            &[&region, &month, &payer_kind],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Inserts a rule version; returns its id (the version number).
pub async fn insert(
    db: &impl GenericClient,
    r: &PolicyRule,
    reason: &str,
    message_id: Option<uuid::Uuid>,
) -> Result<i64, tokio_postgres::Error> {
    let deadline = serde_json::to_value(r.deadline).unwrap_or_default();
    let flexible = r
        .flexible_deadline
        .as_ref()
        .and_then(|d| serde_json::to_value(d).ok());
    let collection = r
        .collection_period
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok());
    let row = db
        .query_one(
            "insert into policy_rules (region, insurance_type, line, effective_from, effective_to, standard_base,
                 floor, cap, employer_rate, employee_rate, flexible_rate, retiree_monthly_premium, retiree_pays_rate,
                 deadline, flexible_deadline, reason, message_id, deadline_month, arrival_working_days,
                 benefits_affected_from, yearly_premium, collection_period, in_use_from)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                     $21, $22, $23)
             returning rule_id",
            &[
                &r.region.as_str(),
                &r.insurance_type.as_str(),
                &r.insurance_type.line().as_str(),
                &r.effective_from.first_day(),
                &r.effective_to.map(contracts::ids::YearMonth::first_day),
                &r.standard_base,
                &r.floor,
                &r.cap,
                &r.employer_rate,
                &r.employee_rate,
                &r.flexible_rate,
                &r.retiree_monthly_premium,
                &r.retiree_pays_rate,
                &deadline,
                &flexible,
                &reason,
                &message_id,
                &r.deadline_month.as_str(),
                &i32::from(r.arrival_working_days),
                &r.benefits_affected_from,
                &r.yearly_premium,
                &collection,
                &r.in_use_from.map(contracts::ids::YearMonth::first_day),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Loads `policy/seed.yaml` into an empty policy table (first start); a table that already
/// has rules is left alone: after the seed, policy changes only by `set-policy`.
pub async fn seed(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    use anyhow::Context;
    let seed: crate::domain::policy::PolicySeed = config::Config::builder()
        .add_source(config::File::from_str(SEED, config::FileFormat::Yaml))
        .build()
        .and_then(config::Config::try_deserialize)
        .context("policy/seed.yaml does not load")?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("lock table policy_rules in exclusive mode", &[])
        .await?;
    let existing: i64 = tx
        .query_one("select count(*) from policy_rules", &[])
        .await?
        .get(0);
    if existing == 0 {
        for r in seed.rules.rules() {
            insert(&tx, r, "seed (policy/seed.yaml)", None).await?;
        }
        for d in seed.calendar.holidays() {
            tx.execute(
                "insert into calendar_days (day, kind) values ($1, 'holiday') on conflict do nothing",
                &[d],
            )
            .await?;
        }
        for d in seed.calendar.extra_workdays() {
            tx.execute(
                "insert into calendar_days (day, kind) values ($1, 'workday') on conflict do nothing",
                &[d],
            )
            .await?;
        }
        for o in &seed.deadline_overrides {
            tx.execute(
                "insert into deadline_overrides (region, month, payer_kind, opens, closes, source)
                 values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
                &[
                    &o.region.as_str(),
                    &o.month.first_day(),
                    &o.payer_kind.as_str(),
                    &o.opens,
                    &o.closes,
                    &o.source,
                ],
            )
            .await?;
        }
        tracing::info!(rules = seed.rules.rules().len(), "policy seeded");
    }
    tx.commit().await?;
    Ok(())
}

/// The seed the service starts with (Wuhan and Hangzhou figures from DOMAIN.md).
pub const SEED: &str = include_str!("../policy/seed.yaml");

//! Monthly assessment (核定) as set-based SQL: a few statements whatever the number of
//! persons. The rules are the same as `domain::assessment` (one item per person, insurance
//! type and share, each rounded half up to the fen: Postgres `round(numeric, 2)` rounds half
//! away from zero); `tests/assessment.rs` checks that SQL and Rust agree.
//!
//! A run computes what is due now, compares it with every item already assessed for the month
//! and writes only the differences: a repeat writes nothing, a late enrollment or a wage
//! change writes adjustment items (补差) and publishes an `adjustment`, nothing is rewritten.

use chrono::NaiveDate;
use contracts::Line;
use deadpool_postgres::Transaction;
use messaging::consumer::HandlerError;
use messaging::{Envelope, Names};
use rust_decimal::Decimal;
use uuid::Uuid;

/// What to assess: `line` for `month` (first day) under `region`'s rules; assessments
/// created by the run get the employers' deadline, the batch-debit day (flexible workers
/// with a signed debit agreement in force for the month) or the persons' deadline.
pub struct Run<'a> {
    pub region: &'a str,
    pub line: Line,
    pub month: NaiveDate,
    pub employer_deadline: NaiveDate,
    pub debit_deadline: NaiveDate,
    pub person_deadline: NaiveDate,
    /// The same three before freeze orders moved them (see `crate::freezes`).
    pub plain: PlainDeadlines,
}

/// A month's deadlines as its policy rules give them (with any published override), before
/// any freeze order.
#[derive(Debug, Clone, Copy)]
pub struct PlainDeadlines {
    pub employer: NaiveDate,
    pub debit: NaiveDate,
    pub person: NaiveDate,
}

/// The nil person id of an employer's rounding item (the employer's share is rounded once on
/// the sum of its employees' bases; see `domain::assessment::employer_share`).
pub const ROUNDING_PERSON: Uuid = Uuid::nil();

pub struct RunOutcome {
    pub run_id: Uuid,
    pub payers: i64,
    pub items: i64,
    pub total_change: Decimal,
    pub skipped: i64,
}

/// Runs the assessment `what`. Writes the `contribution-assessed` events into the outbox in the same
/// transaction.
pub async fn run(
    tx: &Transaction<'_>,
    names: &Names,
    what: &Run<'_>,
    cause: &Envelope,
) -> Result<RunOutcome, HandlerError> {
    let Run {
        region,
        line,
        month,
        employer_deadline,
        debit_deadline,
        person_deadline,
        plain,
    } = *what;
    let run_id = Uuid::now_v7();
    let line_s = line.as_str();
    // 1. What is due now, item by item.
    // One run of a line's month at a time: two at once would both find nothing assessed
    // before them and write the month twice.
    tx.execute(
        "select pg_advisory_xact_lock(hashtext(current_schema() || ':assess:' || $1 || ':' || $2::text))",
        &[&line_s, &month.to_string()],
    )
    .await?;
    // The run's hash joins and aggregates are over the whole month (a million persons, two
    // million items): with the server's default 4 MB each spills to temporary files in batches.
    // The projection's joins, planned with a policy rule estimated at one row, ran the whole
    // join once per insurance type of the line under a nested loop (BENCHMARKS.md, 2026-12-08):
    // nested loops are off for that one statement, and so is JIT compilation, which the
    // disabled plans' inflated costs would otherwise ask for with full optimisation (a second
    // per statement, whatever the number of persons).
    tx.batch_execute(
        "set local work_mem = '64MB';
         drop table if exists pg_temp.expected; drop table if exists pg_temp.delta;
         drop table if exists pg_temp.per_line;
         set local enable_nestloop = off;
         set local jit = off",
    )
    .await?;
    tx.execute(
        "create temp table expected on commit drop as
         with rule as (
             select distinct on (r.insurance_type)
                    r.insurance_type, r.employer_rate, r.employee_rate, r.flexible_rate,
                    r.retiree_monthly_premium, r.retiree_pays_rate, r.yearly_premium,
                    -- A rule in use only from a later month (in_use_from, Hangzhou 2020: July)
                    -- has the standard base of the rule before it until that month is
                    -- assessed (policy_in_use), as `rules::applied` in Rust.
                    coalesce(case when r.in_use_from is not null and not exists (
                                      select 1 from policy_in_use u
                                      where u.region = r.region and u.insurance_type = r.insurance_type
                                        and u.effective_from = r.effective_from)
                                  then (select p.standard_base from policy_rules p
                                        where p.region = r.region and p.insurance_type = r.insurance_type
                                          and p.superseded_by is null and p.effective_from < r.effective_from
                                        order by p.effective_from desc limit 1) end,
                             r.standard_base) as standard_base
             from policy_rules r
             where r.region = $1 and r.line = $2 and r.superseded_by is null
               and r.effective_from <= $3 and (r.effective_to is null or r.effective_to >= $3)
             order by r.insurance_type, r.effective_from desc
         ),
         cov as (
             select c.person_id, c.insurance_type, c.category, c.employer_credit_code,
                    p.minimum_years_met,
                    -- A resident's yearly premium is charged in the first month of the year
                    -- the person is covered: not covered in any earlier month of the year.
                    case when c.category = 'resident' then not exists (
                        select 1 from coverage e
                        where e.person_id = c.person_id and e.insurance_type = c.insurance_type
                          and greatest(e.from_month, date_trunc('year', $3::date)::date) < $3
                          and (e.to_month is null or e.to_month >= date_trunc('year', $3::date)::date))
                    end as first_in_year
             from coverage c join persons p using (person_id)
             where c.line = $2 and c.from_month <= $3 and (c.to_month is null or c.to_month >= $3)
         )
         select case when cov.category = 'employee' then 'employer' else 'person' end as payer_kind,
                case when cov.category = 'employee' then cov.employer_credit_code else cov.person_id::text end as payer_id,
                cov.person_id, cov.insurance_type, s.share, s.base, s.rate, s.amount
         from cov
         join rule r on r.insurance_type = cov.insurance_type
         left join bases b on b.person_id = cov.person_id and b.insurance_type = cov.insurance_type
                          and b.year = extract(year from $3::date)::int
         cross join lateral (
             select coalesce(b.base, case when cov.category in ('flexible', 'resident', 'retiree') then r.standard_base end) as base
         ) eb
         cross join lateral (
             select 'employer' as share, eb.base, r.employer_rate as rate, round(eb.base * r.employer_rate, 2) as amount
              where cov.category = 'employee' and eb.base is not null and r.employer_rate > 0
             union all
             select 'employee', eb.base, r.employee_rate, round(eb.base * r.employee_rate, 2)
              where cov.category = 'employee' and eb.base is not null and r.employee_rate > 0
             union all
             select 'person', eb.base, r.flexible_rate, round(eb.base * r.flexible_rate, 2)
              where (cov.category = 'flexible'
                     or (cov.category = 'resident' and r.yearly_premium is null)
                     or (cov.category = 'retiree' and (r.retiree_pays_rate or not cov.minimum_years_met)))
                and r.flexible_rate > 0
             union all
             -- The fixed premium is owed by every retiree, with or without the minimum years.
             select 'person', 0.00, 0, r.retiree_monthly_premium
              where cov.category = 'retiree' and not r.retiree_pays_rate and r.retiree_monthly_premium > 0
             union all
             -- Resident medical: the yearly premium, once per person and year, no monthly rate.
             select 'person', 0.00, 0, r.yearly_premium
              where cov.category = 'resident' and r.yearly_premium > 0 and cov.first_in_year
         ) s",
        &[&region, &line_s, &month],
    )
    .await?;
    tx.batch_execute("set local enable_nestloop to default; set local jit to default")
        .await?;
    // The employer's share is rate × the sum of its employees' bases, rounded once: one
    // rounding item per employer and type reconciles it with the per-person items.
    tx.execute(
        "insert into pg_temp.expected (payer_kind, payer_id, person_id, insurance_type, share, base, rate, amount)
         select 'employer', payer_id, $1, insurance_type, 'rounding', null, rate,
                round(sum(base) * rate, 2) - sum(amount)
         from pg_temp.expected where share = 'employer'
         group by payer_id, insurance_type, rate
         having round(sum(base) * rate, 2) <> sum(amount)",
        &[&ROUNDING_PERSON],
    )
    .await?;
    // Covered persons who could not be assessed: no policy rule for the type in force this
    // month, or an employee without a declared base. (A retiree owing nothing is not skipped.)
    let skipped: i64 = tx
        .query_one(
            "select count(distinct c.person_id) from coverage c
             left join bases b on b.person_id = c.person_id and b.insurance_type = c.insurance_type
                              and b.year = extract(year from $3::date)::int
             where c.line = $2 and c.from_month <= $3 and (c.to_month is null or c.to_month >= $3)
               and (not exists (select 1 from policy_rules r
                                where r.region = $1 and r.insurance_type = c.insurance_type and r.superseded_by is null
                                  and r.effective_from <= $3 and (r.effective_to is null or r.effective_to >= $3))
                    or (c.category = 'employee' and b.base is null))",
            &[&region, &line_s, &month],
        )
        .await?
        .get(0);

    // 2. The differences from what was assessed before for this month. A month's first run
    //    has nothing before it: what is due is the difference, with no comparison to make.
    let assessed_before: bool = tx
        .query_one(
            "select exists (select 1 from assessments where line = $1 and month = $2)",
            &[&line_s, &month],
        )
        .await?
        .get(0);
    if assessed_before {
        tx.execute(
            "create temp table delta on commit drop as
             with before as (
                 select a.payer_kind, a.payer_id, i.person_id, i.insurance_type, i.share,
                        sum(i.amount) as amount
                 from assessment_items i join assessments a using (assessment_id)
                 where a.line = $1 and a.month = $2 and i.line = $1 and i.month = $2
                 group by 1, 2, 3, 4, 5
             )
             select coalesce(e.payer_kind, b.payer_kind) as payer_kind,
                    coalesce(e.payer_id, b.payer_id) as payer_id,
                    coalesce(e.person_id, b.person_id) as person_id,
                    coalesce(e.insurance_type, b.insurance_type) as insurance_type,
                    coalesce(e.share, b.share) as share,
                    e.base, coalesce(e.rate, 0) as rate,
                    coalesce(e.amount, 0) - coalesce(b.amount, 0) as amount
             from pg_temp.expected e
             full join before b on b.payer_kind = e.payer_kind and b.payer_id = e.payer_id
                  and b.person_id = e.person_id and b.insurance_type = e.insurance_type and b.share = e.share
             where coalesce(e.amount, 0) <> coalesce(b.amount, 0)",
            &[&line_s, &month],
        )
        .await?;
    } else {
        tx.batch_execute(
            "delete from pg_temp.expected where amount = 0;
             alter table pg_temp.expected rename to delta",
        )
        .await?;
    }
    // One pass over the differences, per payer, insurance type and share (a rounding item
    // belongs to its employer's share and is nobody's person): everything below but the items
    // themselves reads this small table instead of the differences again.
    tx.batch_execute(
        "create temp table per_line on commit drop as
         select payer_kind, payer_id, insurance_type,
                case when share = 'rounding' then 'employer' else share end as share,
                count(*) as items, count(*) filter (where share <> 'rounding') as persons,
                sum(amount) as amount
         from pg_temp.delta group by 1, 2, 3, 4;
         analyze pg_temp.per_line",
    )
    .await?;
    let sums = tx
        .query_one(
            "select coalesce(sum(items), 0)::bigint, coalesce(sum(amount), 0)::numeric(14, 2),
                    (select count(*) from (select distinct payer_kind, payer_id from pg_temp.per_line) p)
             from pg_temp.per_line",
            &[],
        )
        .await?;
    let (items, total_change, payers): (i64, Decimal, i64) = (sums.get(0), sums.get(1), sums.get(2));
    if items == 0 {
        tx.execute(
            "insert into assessment_runs (run_id, line, month, message_id, payers, items, total_change, skipped)
             values ($1, $2, $3, $4, 0, 0, 0, $5)",
            &[&run_id, &line_s, &month, &cause.message_id, &(skipped as i32)],
        )
        .await?;
        return Ok(RunOutcome {
            run_id,
            payers: 0,
            items: 0,
            total_change: Decimal::ZERO,
            skipped,
        });
    }

    // 3. Assessments for payers seen for the first time this month.
    tx.execute(
        "insert into assessments (assessment_id, line, payer_kind, payer_id, month, deadline,
                                  plain_deadline, created_run, batch_debit)
         select uuid_v7(), $1, payer_kind, payer_id, $2,
                case k when 'employer' then $3::date when 'debit' then $6::date else $5::date end,
                case k when 'employer' then $7::date when 'debit' then $9::date else $8::date end,
                $4, k = 'debit'
         from (select payer_kind, payer_id,
                      case when payer_kind = 'employer' then 'employer'
                           when exists (select 1 from persons pe where pe.person_id::text = p.payer_id and pe.category = 'flexible')
                            and coalesce((select d.signed from debit_agreements d
                                          where d.person_id::text = p.payer_id and d.line = $1 and d.from_month <= $2
                                          order by d.from_month desc limit 1), false)
                           then 'debit'
                           else 'person' end as k
               from (select distinct payer_kind, payer_id from pg_temp.per_line) p) p
         on conflict (line, payer_kind, payer_id, month) do nothing",
        &[
            &line_s,
            &month,
            &employer_deadline,
            &run_id,
            &person_deadline,
            &debit_deadline,
            &plain.employer,
            &plain.person,
            &plain.debit,
        ],
    )
    .await?;
    tx.execute(
        "insert into assessment_runs (run_id, line, month, message_id, payers, items, total_change, skipped)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &run_id,
            &line_s,
            &month,
            &cause.message_id,
            &(payers as i32),
            &(items as i32),
            &total_change,
            &(skipped as i32),
        ],
    )
    .await?;

    // 4. The difference items, then the new amounts due. Each item takes its assessment from
    //    the join, so it cannot name a missing one; that every difference found its assessment
    //    is checked here, on the count this statement returns, instead of a foreign-key lookup
    //    per item (V8).
    // A month's first items go into a table of their own, attached as the month's partition
    // once they are in: its indexes are then built in one pass instead of maintained item by
    // item (V10). Later runs of the month insert through the parent.
    let select = "select a.assessment_id, $3, d.person_id, d.insurance_type, d.share, d.base, d.rate, d.amount, $1, $2
                  from pg_temp.delta d
                  join assessments a on a.line = $1 and a.month = $2 and a.payer_kind = d.payer_kind and a.payer_id = d.payer_id";
    let partition = format!("assessment_items_{line_s}_{}", month.format("%Y_%m"));
    let partitioned: bool = tx
        .query_one("select to_regclass($1) is not null", &[&partition])
        .await?
        .get(0);
    let written = if partitioned || assessed_before {
        tx.execute(
            &format!("insert into assessment_items {select}"),
            &[&line_s, &month, &run_id],
        )
        .await?
    } else {
        let next = month.checked_add_months(chrono::Months::new(1)).unwrap_or(month);
        // The check matches the partition's bounds, so that attaching it needs no scan.
        tx.batch_execute(&format!(
            "create table {partition} (like assessment_items including defaults including constraints,
                 constraint {partition}_bounds check (line = '{line_s}' and month = '{month}'))"
        ))
        .await?;
        let n = tx
            .execute(
                &format!("insert into {partition} {select}"),
                &[&line_s, &month, &run_id],
            )
            .await?;
        tx.batch_execute(&format!(
            "alter table assessment_items_{line_s} attach partition {partition}
                 for values from ('{month}') to ('{next}')"
        ))
        .await?;
        n
    };
    if written != items as u64 {
        return Err(HandlerError::Permanent(anyhow::anyhow!(
            "assessment of {line} {month}: {} of {items} difference items found no assessment; nothing was written",
            items as u64 - written.min(items as u64)
        )));
    }
    tx.execute(
        "update assessments a set due = a.due + d.amount, updated_at = now()
         from (select payer_kind, payer_id, sum(amount) as amount from pg_temp.per_line group by 1, 2) d
         where a.line = $1 and a.month = $2 and a.payer_kind = d.payer_kind and a.payer_id = d.payer_id",
        &[&line_s, &month],
    )
    .await?;

    // 5. One event per payer whose amount changed, written straight into the outbox.
    let mut headers = std::collections::BTreeMap::new();
    messaging::trace::continue_from(&mut headers, &cause.headers);
    if let Some(ch) = cause.channel {
        headers.insert(contracts::headers::CHANNEL.to_owned(), ch.as_str().to_owned());
    }
    let headers = serde_json::to_value(headers).unwrap_or_default();
    let routing_key = format!("{line}.collection.contribution-assessed");
    tx.execute(
        "insert into outbox (message_id, exchange, routing_key, message_type, correlation_id, headers, body)
         select uuid_v7(), $1, $2, 'collection.contribution-assessed.v1', $3, $4,
                jsonb_build_object(
                    'assessment_id', a.assessment_id, 'run_id', $5::uuid,
                    'kind', case when a.created_run = $5::uuid then 'initial' else 'adjustment' end,
                    'payer_kind', a.payer_kind, 'payer_id', a.payer_id, 'month', to_char(a.month, 'YYYY-MM'),
                    'lines', l.lines, 'amount', to_char(l.amount, 'FM999999999990.00'),
                    'total_due', to_char(a.due, 'FM999999999990.00'), 'deadline', a.deadline, 'line', $6::text,
                    'batch_debit', a.batch_debit)
         from (select payer_kind, payer_id, sum(amount) as amount,
                      jsonb_agg(jsonb_build_object('insurance_type', insurance_type, 'share', share,
                                'persons', persons, 'amount', to_char(amount, 'FM999999999990.00'))
                                order by insurance_type, share) as lines
               from pg_temp.per_line group by 1, 2) l
         join assessments a on a.line = $6 and a.month = $7 and a.payer_kind = l.payer_kind and a.payer_id = l.payer_id
         order by a.payer_kind, a.payer_id",
        &[&names.events_exchange(), &routing_key, &cause.correlation(), &headers, &run_id, &line_s, &month],
    )
    .await?;
    Ok(RunOutcome {
        run_id,
        payers,
        items,
        total_change,
        skipped,
    })
}

//! The chaos soak's closing proof (issue 14 §2): with every service stopped or idle and every
//! queue drained, the databases must reconcile.
//!
//! [`reconcile`] reads the five services' schemas as the database's administrator and returns
//! one [`Check`] per invariant:
//!
//! - **collection**: per assessment (payer, month and line) the items assessed add up to what
//!   is due, the payments to what is recorded paid, so that *assessed = paid + outstanding*,
//!   with *outstanding* as the service states it (`due − paid`, never below zero) and what is
//!   paid beyond the amount due reported as overpayment;
//! - **benefits, fund payments**: every ledger payment (own account, mutual aid, reversal) and
//!   every settled fee line names a settlement that exists; every settlement's fund total is
//!   the sum of its funds (pooled, large-amount, medical assistance, public finance), its
//!   reply agrees with its row, and the ledger debited (and, once cancelled, gave back)
//!   exactly what it says the accounts paid;
//! - **benefits, personal accounts**: no account is stored apart from its ledger (the balance
//!   is the sum of `account_entries`), so what is checked is that no debit ever overdrew the
//!   ledger and that the balance each settlement replied equals the ledger's after its debit;
//! - **benefits, daily totals**: per institution, insurance type and day, what reconcile-totals
//!   (NHSA 3201) answers, computed with the service's own query, equals the sum of the replies
//!   the institution was given at settlement and the sum of the settled fee lines;
//! - **per service**: the outbox is drained (and the freeze backlog processed), and the inbox
//!   holds no message twice (its key, and the rows).
//!
//! [`scan_logs`] proves that no log line holds a full ID number or phone number.
//!
//! Money is compared exactly, in SQL (`numeric`), and shown as text.

use std::collections::{BTreeSet, HashSet};
use std::io::BufRead;
use std::path::PathBuf;

/// One invariant's verdict: `detail` gives the figures, and on failure the first offenders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.ok { "ok" } else { "FAILED" };
        write!(f, "[{verdict}] {}: {}", self.name, self.detail)
    }
}

/// The schema of each service. [`Schemas::default`] is what each service's
/// `configuration/base.yaml` names (card-issuance's is `card`); tests use prefixed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schemas {
    pub enrollment: String,
    pub collection: String,
    pub benefits: String,
    pub card_issuance: String,
    pub notification: String,
}

impl Default for Schemas {
    fn default() -> Self {
        Schemas {
            enrollment: "enrollment".into(),
            collection: "collection".into(),
            benefits: "benefits".into(),
            card_issuance: "card".into(),
            notification: "notification".into(),
        }
    }
}

impl Schemas {
    /// `(service, schema)` of all five.
    pub fn all(&self) -> [(&'static str, &str); 5] {
        [
            ("enrollment", &self.enrollment),
            ("collection", &self.collection),
            ("benefits", &self.benefits),
            ("card-issuance", &self.card_issuance),
            ("notification", &self.notification),
        ]
    }
}

/// How many offenders a failed check names.
const SHOWN: i64 = 5;

/// How far apart (booked_at) a personal-account credit and a settlement may be and still have
/// run concurrently: credits (from contribution-settled) do not lock the person as
/// settlements do, so a settlement may not have seen a credit committed while it ran, whose
/// entry nevertheless comes before its own. Twice the handler timeout (60 s), in which any
/// transaction of a handler ends.
const CONCURRENT: &str = "2 minutes";

/// Every database check, in order: collection, benefits (fund payments, personal accounts,
/// daily totals), then each service's outbox and inbox.
pub async fn reconcile(db: &tokio_postgres::Client, s: &Schemas) -> anyhow::Result<Vec<Check>> {
    let mut checks = vec![
        collection_assessed(db, &s.collection).await?,
        benefits_fund_payments(db, &s.benefits).await?,
        benefits_accounts(db, &s.benefits).await?,
        benefits_daily_totals(db, &s.benefits).await?,
    ];
    for (service, schema) in s.all() {
        checks.push(outbox_drained(db, service, schema).await?);
    }
    for (service, schema) in s.all() {
        checks.push(inbox_once(db, service, schema).await?);
    }
    Ok(checks)
}

/// `name` as a quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `sql` with every `@.` naming a table of `schema`.
fn on(schema: &str, sql: &str) -> String {
    sql.replace("@.", &format!("{}.", ident(schema)))
}

/// The sum of `expr` as text with two decimals (0.00 over no rows).
fn money(expr: &str) -> String {
    format!("coalesce(sum({expr}), 0)::numeric(16, 2)::text")
}

/// As [`money`], over the rows where `cond` holds.
fn money_where(expr: &str, cond: &str) -> String {
    format!("coalesce(sum({expr}) filter (where {cond}), 0)::numeric(16, 2)::text")
}

/// The amount under `key` of the JSON object `col` (as replied), or null when it is absent or
/// not a decimal number.
fn jnum(col: &str, key: &str) -> String {
    format!(
        "(case when ({col} ->> '{key}') ~ '^-?[0-9]+(\\.[0-9]+)?$' then ({col} ->> '{key}')::numeric end)"
    )
}

/// The rows of `sql` (one text column, a description per offending row): how many, and the
/// first [`SHOWN`].
async fn offenders(db: &tokio_postgres::Client, sql: &str) -> anyhow::Result<(i64, Vec<String>)> {
    let rows = db
        .query(
            &format!("select d, count(*) over () from ({sql}) as o(d) order by d limit {SHOWN}"),
            &[],
        )
        .await?;
    let n = rows.first().map_or(0, |r| r.get::<_, i64>(1));
    Ok((n, rows.iter().map(|r| r.get::<_, String>(0)).collect()))
}

/// A check from its figures and its offenders.
fn verdict(name: String, figures: String, offenders: &[(&str, i64, Vec<String>)]) -> Check {
    let failed: Vec<String> = offenders
        .iter()
        .filter(|(_, n, _)| *n > 0)
        .map(|(what, n, first)| {
            let more = if *n > first.len() as i64 {
                format!(" (first {} shown)", first.len())
            } else {
                String::new()
            };
            format!("{n} {what}{more}: {}", first.join("; "))
        })
        .collect();
    if failed.is_empty() {
        Check {
            name,
            ok: true,
            detail: figures,
        }
    } else {
        Check {
            name,
            ok: false,
            detail: format!("{}; {figures}", failed.join("; ")),
        }
    }
}

/// Collection: per assessment (one per line, payer kind, payer and month), the items assessed
/// (`assessment_items.amount`) add up to `assessments.due`, and the payments
/// (`payments.amount`) to `assessments.paid`; then assessed = paid + outstanding, where
/// outstanding is the service's `max(due − paid, 0)` (its status and payment-recorded event),
/// and overpayment (`max(paid − due, 0)`, the overpayment-detected event) is reported.
async fn collection_assessed(db: &tokio_postgres::Client, schema: &str) -> anyhow::Result<Check> {
    let rows = "with i as (select assessment_id, sum(amount) as assessed from @.assessment_items group by 1),
                     p as (select assessment_id, sum(amount) as payments, count(*) as n from @.payments group by 1)
                select a.assessment_id, a.line, a.payer_kind, a.payer_id, a.month, a.due, a.paid,
                       coalesce(i.assessed, 0) as assessed, coalesce(p.payments, 0) as payments,
                       coalesce(p.n, 0) as n
                from @.assessments a left join i using (assessment_id) left join p using (assessment_id)";
    let totals = db
        .query_one(
            &on(
                schema,
                &format!(
                    "select count(*), count(distinct (payer_kind, payer_id, month)), {}, {}, {}, {},
                            count(*) filter (where paid > due), coalesce(sum(n), 0)::bigint
                     from ({rows}) r",
                    money("assessed"),
                    money("payments"),
                    money("greatest(due - paid, 0)"),
                    money("greatest(paid - due, 0)"),
                ),
            ),
            &[],
        )
        .await?;
    let (assessments, payer_months): (i64, i64) = (totals.get(0), totals.get(1));
    let (assessed, paid, outstanding, overpaid): (String, String, String, String) =
        (totals.get(2), totals.get(3), totals.get(4), totals.get(5));
    let (overpaid_n, payments): (i64, i64) = (totals.get(6), totals.get(7));
    let bad = offenders(
        db,
        &on(
            schema,
            &format!(
                "select format('%s %s %s (%s, assessment %s): assessed %s = paid %s + outstanding %s - overpaid %s \
                                does not hold (the row says due %s, paid %s)',
                               payer_kind, payer_id, to_char(month, 'YYYY-MM'), line, assessment_id,
                               assessed, payments, greatest(due - paid, 0), greatest(paid - due, 0), due, paid)
                 from ({rows}) r where assessed <> due or payments <> paid"
            ),
        ),
    )
    .await?;
    Ok(verdict(
        "collection: assessed = paid + outstanding per payer and month".into(),
        format!(
            "{assessments} assessments ({payer_months} payer-months), {payments} payments: \
             assessed {assessed} = paid {paid} + outstanding {outstanding} - overpaid {overpaid} \
             ({overpaid_n} overpaid)"
        ),
        &[(
            "assessments whose items or payments disagree with it",
            bad.0,
            bad.1,
        )],
    ))
}

/// The amounts a settlement's reply (`settlements.result`, what the institution was told) must
/// agree with its row on.
const REPLIED: [&str; 9] = [
    "medfee_sumamt",
    "hifp_pay",
    "hifob_pay",
    "hifmi_pay",
    "oth_pay",
    "fund_pay_sumamt",
    "acct_pay",
    "acct_mulaid_pay",
    "psn_cash_pay",
];

/// Benefits: every fund payment has its settlement. The schema keeps no fund payment rows of
/// its own: a settlement (`settlements`) carries what each fund paid in columns
/// (`hifp_pay` pooled, `hifob_pay` large-amount, `hifmi_pay` medical assistance, `oth_pay`
/// public finance, `fund_pay_sumamt` their total), and the payments made from it are the
/// ledger rows of the personal accounts (`account_entries` of kind `settlement`, `mutual-aid`
/// and, when cancelled, `reversal`) and the fee lines it settled (`fee_lines.setl_id`), none
/// of which has a foreign key. So: each of those rows names an existing settlement (and the
/// right visit, account and reference), and per settlement the fund total is the sum of the
/// funds, the amount the sum of the payers, the reply agrees with the row, and the ledger
/// debited exactly `acct_pay` from the person and `acct_mulaid_pay` from the mutual-aid
/// grantor, and gave both back once the settlement was cancelled.
async fn benefits_fund_payments(db: &tokio_postgres::Client, schema: &str) -> anyhow::Result<Check> {
    let t = db
        .query_one(
            &on(
                schema,
                &format!(
                    "select count(*), count(*) filter (where status = 'settled'),
                            {}, {}, {}, {}, {},
                            (select count(*) from @.account_entries where kind <> 'credit'),
                            (select count(*) from @.fee_lines where setl_id is not null)
                     from @.settlements",
                    money_where("fund_pay_sumamt", "status = 'settled'"),
                    money_where("hifp_pay", "status = 'settled'"),
                    money_where("hifob_pay", "status = 'settled'"),
                    money_where("hifmi_pay", "status = 'settled'"),
                    money_where("oth_pay", "status = 'settled'"),
                ),
            ),
            &[],
        )
        .await?;
    let (settlements, settled): (i64, i64) = (t.get(0), t.get(1));
    let (fund, pooled, large, assistance, finance): (String, String, String, String, String) =
        (t.get(2), t.get(3), t.get(4), t.get(5), t.get(6));
    let (ledger, lines): (i64, i64) = (t.get(7), t.get(8));

    let orphans = offenders(
        db,
        &on(
            schema,
            "select format('account entry %s (%s %s on %s): %s', e.entry_id, e.kind, e.amount, e.person_id,
                           case when e.kind = 'credit' then 'a credit naming settlement ' || e.setl_id
                                when e.setl_id is null then 'names no settlement'
                                else 'settlement ' || e.setl_id || ' does not exist' end)
             from @.account_entries e
             where case when e.kind = 'credit' then e.setl_id is not null
                        else e.setl_id is null
                             or not exists (select 1 from @.settlements s where s.setl_id = e.setl_id) end
             union all
             select format('fee line %s (%s) of visit %s: %s', l.line_id, l.det_item_fee_sumamt, l.mdtrt_id,
                           case when s.setl_id is null then 'settlement ' || l.setl_id || ' does not exist'
                                else 'settlement ' || l.setl_id || ' is of visit ' || s.mdtrt_id end)
             from @.fee_lines l left join @.settlements s on s.setl_id = l.setl_id
             where l.setl_id is not null and (s.setl_id is null or s.mdtrt_id <> l.mdtrt_id)",
        ),
    )
    .await?;

    let reply = REPLIED
        .iter()
        .map(|k| {
            format!(
                "case when {} is distinct from s.{k} then format('{k} %s (row %s)', coalesce(s.result ->> '{k}', 'absent'), s.{k}) end",
                jnum("s.result", k)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let per_settlement = offenders(
        db,
        &on(
            schema,
            &format!(
                "with l as (
                     select e.setl_id,
                            coalesce(-sum(e.amount) filter (where e.kind = 'settlement'), 0) as own,
                            count(*) filter (where e.kind = 'settlement') as own_n,
                            coalesce(-sum(e.amount) filter (where e.kind = 'mutual-aid'), 0) as aid,
                            count(*) filter (where e.kind = 'mutual-aid') as aid_n,
                            coalesce(sum(e.amount) filter (where e.kind = 'reversal'), 0) as back,
                            count(*) filter (where e.kind = 'reversal') as back_n,
                            count(*) filter (where (e.kind = 'settlement' and e.person_id <> s.person_id)
                                or (e.kind = 'mutual-aid' and e.person_id is distinct from s.mulaid_person_id)
                                or (e.kind = 'reversal' and e.person_id <> s.person_id
                                    and e.person_id is distinct from s.mulaid_person_id)) as elsewhere,
                            count(*) filter (where e.reference <> case when e.kind = 'reversal' then 'reversal:'
                                else 'settlement:' end || e.setl_id::text) as misnamed
                     from @.account_entries e join @.settlements s using (setl_id)
                     where e.kind <> 'credit' group by e.setl_id),
                 p as (
                     select s.setl_id, concat_ws('; ',
                         case when s.fund_pay_sumamt <> s.hifp_pay + s.hifob_pay + s.hifmi_pay + s.oth_pay
                              then format('fund %s <> pooled %s + large %s + assistance %s + finance %s',
                                          s.fund_pay_sumamt, s.hifp_pay, s.hifob_pay, s.hifmi_pay, s.oth_pay) end,
                         case when s.medfee_sumamt <> s.fund_pay_sumamt + s.acct_pay + s.acct_mulaid_pay + s.psn_cash_pay
                              then format('amount %s <> fund %s + account %s + mutual aid %s + cash %s',
                                          s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay, s.acct_mulaid_pay,
                                          s.psn_cash_pay) end,
                         nullif(concat_ws(', ', {reply}), ''),
                         case when coalesce(l.own, 0) <> s.acct_pay or coalesce(l.own_n, 0) > 1
                              then format('account paid %s, the ledger debited %s in %s entries',
                                          s.acct_pay, coalesce(l.own, 0), coalesce(l.own_n, 0)) end,
                         case when coalesce(l.aid, 0) <> s.acct_mulaid_pay or coalesce(l.aid_n, 0) > 1
                                   or (s.acct_mulaid_pay <> 0) <> (s.mulaid_person_id is not null)
                              then format('mutual aid paid %s from %s, the ledger debited %s in %s entries',
                                          s.acct_mulaid_pay, coalesce(s.mulaid_person_id::text, 'nobody'),
                                          coalesce(l.aid, 0), coalesce(l.aid_n, 0)) end,
                         case when coalesce(l.back, 0) <> case when s.status = 'cancelled'
                                       then s.acct_pay + s.acct_mulaid_pay else 0 end
                                   or coalesce(l.back_n, 0) > 2
                              then format('%s, the ledger gave back %s in %s entries', s.status,
                                          coalesce(l.back, 0), coalesce(l.back_n, 0)) end,
                         case when coalesce(l.elsewhere, 0) > 0
                              then format('%s ledger entries on another account', l.elsewhere) end,
                         case when coalesce(l.misnamed, 0) > 0
                              then format('%s ledger entries with another reference', l.misnamed) end
                     ) as problems
                     from @.settlements s left join l using (setl_id))
                 select format('settlement %s: %s', setl_id, problems) from p where problems <> ''"
            ),
        ),
    )
    .await?;
    Ok(verdict(
        "benefits: every fund payment has its settlement".into(),
        format!(
            "{settlements} settlements ({settled} standing): standing fund {fund} = pooled {pooled} + \
             large-amount {large} + assistance {assistance} + finance {finance}; {ledger} ledger payments \
             and {lines} settled fee lines, each with its settlement"
        ),
        &[
            ("payments naming no settlement", orphans.0, orphans.1),
            (
                "settlements whose payments disagree",
                per_settlement.0,
                per_settlement.1,
            ),
        ],
    ))
}

/// Benefits: every personal-account balance equals its ledger. The personal account keeps no
/// balance column: the balance is always `sum(account_entries.amount)` of the person (what
/// account-balance and the settlement split read). What is checked: every entry is of a known
/// person; no debit (own settlement or mutual aid) took the ledger below zero; and the balance
/// each settlement replied (`settlements.result.balc`, "after this settlement") equals the
/// ledger's running balance right after that settlement's debit, except by credits of the
/// same person booked concurrently (within [`CONCURRENT`]; credits do not lock the person, so
/// the settlement may not have seen one committed while it ran), which are counted apart.
async fn benefits_accounts(db: &tokio_postgres::Client, schema: &str) -> anyhow::Result<Check> {
    let running = "select entry_id, person_id, kind, amount, setl_id, booked_at,
                          sum(amount) over (partition by person_id order by entry_id) as running
                   from @.account_entries";
    let replies = format!(
        "select s.setl_id, e.person_id, e.entry_id, e.running, {balc} as balc, s.result ->> 'balc' as replied,
                (select coalesce(sum(abs(c.amount)), 0) from @.account_entries c
                 where c.person_id = e.person_id and c.kind = 'credit' and c.entry_id < e.entry_id
                   and c.booked_at between e.booked_at - interval '{CONCURRENT}'
                                       and e.booked_at + interval '{CONCURRENT}') as concurrent
         from @.settlements s join ({running}) e
           on e.setl_id = s.setl_id and e.kind = 'settlement' and e.person_id = s.person_id",
        balc = jnum("s.result", "balc"),
    );
    let t = db
        .query_one(
            &on(
                schema,
                &format!(
                    "select (select count(distinct person_id) from @.account_entries), {}, {}, {}, {},
                            (select count(*) from ({replies}) r),
                            (select count(*) from ({replies}) r where r.balc <> r.running)
                     from @.account_entries",
                    money("amount"),
                    money_where("amount", "kind = 'credit'"),
                    money_where("-amount", "kind in ('settlement', 'mutual-aid')"),
                    money_where("amount", "kind = 'reversal'"),
                ),
            ),
            &[],
        )
        .await?;
    let accounts: i64 = t.get(0);
    let (balance, credits, debits, reversals): (String, String, String, String) =
        (t.get(1), t.get(2), t.get(3), t.get(4));
    let (replied, concurrent): (i64, i64) = (t.get(5), t.get(6));
    let unknown = offenders(
        db,
        &on(
            schema,
            "select format('account %s: %s entries (%s) but no such person', e.person_id, count(*), sum(e.amount))
             from @.account_entries e where not exists (select 1 from @.persons p where p.person_id = e.person_id)
             group by e.person_id",
        ),
    )
    .await?;
    let overdrawn = offenders(
        db,
        &on(
            schema,
            &format!(
                "select format('account %s: entry %s (%s %s, settlement %s) left the ledger at %s',
                               person_id, entry_id, kind, amount, setl_id, running)
                 from ({running}) e where kind in ('settlement', 'mutual-aid') and running < 0"
            ),
        ),
    )
    .await?;
    let misreplied = offenders(
        db,
        &on(
            schema,
            &format!(
                "select format('settlement %s replied balance %s to account %s; the ledger stood at %s after its \
                                debit (entry %s), concurrent credits %s',
                               setl_id, coalesce(replied, 'absent'), person_id, running, entry_id, concurrent)
                 from ({replies}) r where balc is null or abs(running - balc) > concurrent"
            ),
        ),
    )
    .await?;
    Ok(verdict(
        "benefits: every personal-account balance equals its ledger".into(),
        format!(
            "{accounts} accounts, balance {balance} = credits {credits} - debits {debits} + reversals {reversals} \
             (no balance is stored apart from the ledger); {replied} settlement replies' balances = the ledger \
             after their debit ({concurrent} differing only by concurrent credits), no debit overdrew an account"
        ),
        &[
            ("accounts of unknown persons", unknown.0, unknown.1),
            ("debits overdrawing the ledger", overdrawn.0, overdrawn.1),
            (
                "settlement replies disagreeing with the ledger",
                misreplied.0,
                misreplied.1,
            ),
        ],
    ))
}

/// What reconcile-totals (NHSA 3201) answers for one institution, insurance type and day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyTotals {
    pub fixmedins_code: String,
    pub insutype: String,
    pub day: chrono::NaiveDate,
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub setl_cnt: i64,
}

/// benefits::reconcile::totals's query (standing settlements of an institution, insurance
/// type and `setl_date` range: the sums of `medfee_sumamt`, `fund_pay_sumamt`, `acct_pay`,
/// and their count) for every day at once.
const SERVICE_3201: &str = "select fixmedins_code, insutype, setl_date as day,
        coalesce(sum(medfee_sumamt), 0)::numeric(14, 2) as medfee, coalesce(sum(fund_pay_sumamt), 0)::numeric(14, 2) as fund,
        coalesce(sum(acct_pay), 0)::numeric(14, 2) as acct, count(*) as n
    from @.settlements where status = 'settled' group by 1, 2, 3";

/// Every day's 3201 totals of every institution and insurance type in `benefits_schema`, as
/// the service computes them.
pub async fn daily_totals(
    db: &tokio_postgres::Client,
    benefits_schema: &str,
) -> anyhow::Result<Vec<DailyTotals>> {
    let rows = db
        .query(
            &on(
                benefits_schema,
                &format!(
                    "select fixmedins_code, insutype, day, medfee::text, fund::text, acct::text, n
                     from ({SERVICE_3201}) t order by 3, 1, 2"
                ),
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DailyTotals {
            fixmedins_code: r.get(0),
            insutype: r.get(1),
            day: r.get(2),
            medfee_sumamt: r.get(3),
            fund_pay_sumamt: r.get(4),
            acct_pay: r.get(5),
            setl_cnt: r.get(6),
        })
        .collect())
}

/// Benefits: the institutions' daily totals match. Per institution, insurance type and day,
/// 3201 as the service computes it (from the settlement rows' columns and `setl_date`) against
/// the same figures summed independently: from the replies each institution was given
/// (`result`: amounts, insurance type, the day of `setl_time`), at the visit's institution
/// (`visits.fixmedins_code`), and from the fee lines each settlement settled.
async fn benefits_daily_totals(db: &tokio_postgres::Client, schema: &str) -> anyhow::Result<Check> {
    let independent = format!(
        "select v.fixmedins_code, s.result ->> 'insutype' as insutype,
                (case when (s.result ->> 'setl_time') ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'
                      then left(s.result ->> 'setl_time', 10)::date end) as day,
                coalesce(sum({medfee}), 0)::numeric(14, 2) as medfee, coalesce(sum({fund}), 0)::numeric(14, 2) as fund,
                coalesce(sum({acct}), 0)::numeric(14, 2) as acct, count(*) as n,
                count(*) filter (where {medfee} is null or {fund} is null or {acct} is null) as unreadable,
                coalesce(sum(l.amount), 0)::numeric(14, 2) as lines
         from @.settlements s left join @.visits v using (mdtrt_id)
         left join (select setl_id, sum(det_item_fee_sumamt) as amount from @.fee_lines
                    where setl_id is not null group by 1) l using (setl_id)
         where s.status = 'settled' group by 1, 2, 3",
        medfee = jnum("s.result", "medfee_sumamt"),
        fund = jnum("s.result", "fund_pay_sumamt"),
        acct = jnum("s.result", "acct_pay"),
    );
    let t = db
        .query_one(
            &on(
                schema,
                &format!(
                    "select count(*), coalesce(sum(n), 0)::bigint, {}, {}, {} from ({SERVICE_3201}) t",
                    money("medfee"),
                    money("fund"),
                    money("acct")
                ),
            ),
            &[],
        )
        .await?;
    let (days, n): (i64, i64) = (t.get(0), t.get(1));
    let (medfee, fund, acct): (String, String, String) = (t.get(2), t.get(3), t.get(4));
    let bad = offenders(
        db,
        &on(
            schema,
            &format!(
                "select format('%s %s %s: 3201 gives medfee %s, fund %s, account %s in %s settlements; the replies \
                                add up to medfee %s, fund %s, account %s in %s settlements (%s unreadable), their fee \
                                lines to %s',
                               coalesce(a.fixmedins_code, b.fixmedins_code, '?'), coalesce(a.insutype, b.insutype, '?'),
                               coalesce(a.day, b.day), coalesce(a.medfee::text, '-'), coalesce(a.fund::text, '-'),
                               coalesce(a.acct::text, '-'), coalesce(a.n, 0), coalesce(b.medfee::text, '-'),
                               coalesce(b.fund::text, '-'), coalesce(b.acct::text, '-'), coalesce(b.n, 0),
                               coalesce(b.unreadable, 0), coalesce(b.lines::text, '-'))
                 from ({SERVICE_3201}) a full join ({independent}) b
                   on a.fixmedins_code = b.fixmedins_code and a.insutype = b.insutype and a.day = b.day
                 where a.medfee is distinct from b.medfee or a.fund is distinct from b.fund
                    or a.acct is distinct from b.acct or a.n is distinct from b.n or b.unreadable > 0
                    or a.medfee is distinct from b.lines"
            ),
        ),
    )
    .await?;
    Ok(verdict(
        "benefits: the institutions' daily totals match (3201)".into(),
        format!(
            "{days} institution-days, {n} standing settlements: medfee {medfee}, fund {fund}, account {acct}; \
             each day's 3201 totals = the sums of the replies = the settled fee lines"
        ),
        &[("institution-days whose totals differ", bad.0, bad.1)],
    ))
}

/// A service's outbox is drained: no row unpublished (`outbox.published_at` null, quarantined
/// ones included), and nothing taken in during a freeze left unprocessed
/// (`backlog.processed_at` null) or answered without the broker's confirm
/// (`backlog.reply_confirmed_at` null).
async fn outbox_drained(db: &tokio_postgres::Client, service: &str, schema: &str) -> anyhow::Result<Check> {
    let t = db
        .query_one(
            &on(
                schema,
                "select count(*), count(*) filter (where published_at is not null),
                        count(*) filter (where published_at is null and failed_at is not null),
                        (select count(*) from @.backlog)
                 from @.outbox",
            ),
            &[],
        )
        .await?;
    let (rows, published, quarantined, backlog): (i64, i64, i64, i64) =
        (t.get(0), t.get(1), t.get(2), t.get(3));
    let unpublished = offenders(
        db,
        &on(
            schema,
            "select format('row %s %s (%s, created %s): %s attempt(s)%s', id, routing_key, message_type, created_at,
                           attempts, case when failed_at is not null
                                          then ', quarantined: ' || coalesce(last_error, '') else '' end)
             from @.outbox where published_at is null",
        ),
    )
    .await?;
    let pending = offenders(
        db,
        &on(
            schema,
            "select format('backlog %s %s (order %s, received %s)', seq, routing_key, order_id, received_at)
             from @.backlog where processed_at is null",
        ),
    )
    .await?;
    // A held request's final reply is published after the thaw's commit; the service records
    // the broker's confirm and sends it again until then.
    let unconfirmed = offenders(
        db,
        &on(
            schema,
            "select format('backlog %s %s (order %s, processed %s): final reply never confirmed', seq, routing_key,
                           order_id, processed_at)
             from @.backlog where processed_at is not null and reply_to is not null and reply_confirmed_at is null",
        ),
    )
    .await?;
    Ok(verdict(
        format!("{service}: outbox drained ({schema})"),
        format!(
            "{rows} outbox rows, {published} published ({quarantined} quarantined); {backlog} backlog commands, \
             all processed and their final replies confirmed"
        ),
        &[
            ("outbox rows unpublished", unpublished.0, unpublished.1),
            ("backlog commands unprocessed", pending.0, pending.1),
            (
                "final replies of held requests unconfirmed",
                unconfirmed.0,
                unconfirmed.1,
            ),
        ],
    ))
}

/// A service's inbox holds no message twice. The shared messaging's `inbox` is keyed by
/// `message_id` alone (one row per consumed id, whatever the queue), which is stronger than
/// "once per queue"; so the key is checked to be there (as a primary key or unique constraint
/// on exactly that column) and the rows to be as many as their distinct message ids.
async fn inbox_once(db: &tokio_postgres::Client, service: &str, schema: &str) -> anyhow::Result<Check> {
    let table = format!("{}.inbox", ident(schema));
    let t = db
        .query_one(
            &on(
                schema,
                "select count(*), count(distinct message_id), count(distinct (queue, message_id)),
                        count(distinct queue)
                 from @.inbox",
            ),
            &[],
        )
        .await?;
    let (rows, ids, per_queue, queues): (i64, i64, i64, i64) = (t.get(0), t.get(1), t.get(2), t.get(3));
    let keys: Vec<String> = db
        .query(
            "select pg_get_constraintdef(oid) from pg_constraint
             where conrelid = $1::text::regclass and contype in ('p', 'u') order by 1",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let keyed = keys
        .iter()
        .any(|k| k == "PRIMARY KEY (message_id)" || k == "UNIQUE (message_id)");
    let twice = offenders(
        db,
        &on(
            schema,
            "select format('message %s stored %s times (queues %s)', message_id, count(*),
                           string_agg(queue, ', ' order by queue))
             from @.inbox group by message_id having count(*) > 1",
        ),
    )
    .await?;
    let key_missing = if keyed {
        (0, vec![])
    } else {
        (
            1,
            vec![format!(
                "{table} has no key on message_id (keys: {}): a second delivery could be stored",
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            )],
        )
    };
    Ok(verdict(
        format!("{service}: no inbox message twice ({schema})"),
        format!(
            "{rows} inbox rows = {ids} distinct message ids ({per_queue} per queue and id, {queues} queues); \
             key: {}",
            keys.join(", ")
        ),
        &[
            ("message ids stored more than once", twice.0, twice.1),
            ("inbox tables without their key", key_missing.0, key_missing.1),
        ],
    ))
}

/// How many of the lines found a failed scan lists (all are counted).
const LISTED: usize = 1000;

/// The GB 11643 check character of the first 17 digits.
fn id_check_char(body: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize]
}

/// `s` with all but the first `head` and last `tail` characters replaced by `*`.
fn masked(s: &[u8], head: usize, tail: usize) -> String {
    s.iter()
        .enumerate()
        .map(|(i, &c)| {
            if i < head || i + tail >= s.len() {
                c as char
            } else {
                '*'
            }
        })
        .collect()
}

/// What one line holds in full: `(column, what, masked value)`, at most one per position.
fn findings(
    line: &[u8],
    ids: &HashSet<Vec<u8>>,
    phones: &HashSet<Vec<u8>>,
) -> Vec<(usize, &'static str, String)> {
    let mut found: Vec<(usize, &'static str, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut i = 0;
    while i < line.len() {
        if !line[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && line[i].is_ascii_digit() {
            i += 1;
        }
        let end = i;
        let x = line.get(end).is_some_and(|c| c.eq_ignore_ascii_case(&b'X'));
        let run = &line[start..end];
        // Known values anywhere in the run, even inside a longer one.
        for at in 0..run.len() {
            if at + 18 <= run.len() && ids.contains(&run[at..at + 18]) && seen.insert(start + at) {
                found.push((
                    start + at + 1,
                    "ID number of the soak",
                    masked(&run[at..at + 18], 4, 4),
                ));
            }
            if x && at + 17 == run.len() {
                let mut id = run[at..].to_vec();
                id.push(b'X');
                if ids.contains(&id) && seen.insert(start + at) {
                    found.push((start + at + 1, "ID number of the soak", masked(&id, 4, 4)));
                }
            }
            if at + 11 <= run.len() && phones.contains(&run[at..at + 11]) && seen.insert(start + at) {
                found.push((
                    start + at + 1,
                    "phone number of the soak",
                    masked(&run[at..at + 11], 3, 4),
                ));
            }
        }
        // Any other: a whole token of digits (not part of a longer run of digits or letters,
        // so that the digits inside a UUID's hex, `…-e19674378117`, are no phone number).
        let after_x_digit = x && line.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
        let glued = (start > 0 && line[start - 1].is_ascii_alphabetic())
            || (!x && line.get(end).is_some_and(u8::is_ascii_alphabetic));
        if glued {
            continue;
        }
        if run.len() == 18 && !x && id_check_char(&run[..17]) == run[17] && seen.insert(start) {
            found.push((
                start + 1,
                "ID number (valid GB 11643 check character)",
                masked(run, 4, 4),
            ));
        }
        if run.len() == 17 && x && !after_x_digit && id_check_char(run) == b'X' && seen.insert(start) {
            let mut id = run.to_vec();
            id.push(b'X');
            found.push((
                start + 1,
                "ID number (valid GB 11643 check character)",
                masked(&id, 4, 4),
            ));
        }
        if run.len() == 11 && !x && run[0] == b'1' && (b'3'..=b'9').contains(&run[1]) && seen.insert(start) {
            found.push((start + 1, "mainland mobile number", masked(run, 3, 4)));
        }
    }
    found.sort();
    found
}

/// Scans log `files` line by line for a full ID number or phone number: the exact `ids` (18
/// characters, GB 11643, the last may be X, matched in either case) and `phones` (11 digits)
/// the soak used, wherever they stand, and any other 18-character number with a valid GB 11643
/// check character or 11-digit mainland mobile number (`1[3-9]` and 9 digits) that is not part
/// of a longer run of digits. Masked forms (`4201**********001X`, `139****0001`) hold neither.
/// Every line found is listed as `file:line:column` (up to 1000; all are counted), its value
/// masked, so that the report leaks nothing either.
pub fn scan_logs(files: &[PathBuf], ids: &[String], phones: &[String]) -> anyhow::Result<Check> {
    let mut id_set = HashSet::new();
    for id in ids {
        let b = id.trim().to_ascii_uppercase().into_bytes();
        anyhow::ensure!(
            b.len() == 18
                && b[..17].iter().all(u8::is_ascii_digit)
                && (b[17].is_ascii_digit() || b[17] == b'X'),
            "not an 18-character ID number: {}",
            masked(&b, 4, 4)
        );
        id_set.insert(b);
    }
    let mut phone_set = HashSet::new();
    for p in phones {
        let b = p.trim().as_bytes().to_vec();
        anyhow::ensure!(
            b.len() == 11 && b.iter().all(u8::is_ascii_digit),
            "not an 11-digit phone number: {}",
            masked(&b, 3, 4)
        );
        phone_set.insert(b);
    }
    let (mut lines, mut hits, mut listed) = (0u64, 0u64, Vec::new());
    for file in files {
        let f = std::fs::File::open(file)
            .map_err(|e| anyhow::anyhow!("opening log file {}: {e}", file.display()))?;
        let mut reader = std::io::BufReader::new(f);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| anyhow::anyhow!("reading log file {}: {e}", file.display()))?;
            if read == 0 {
                break;
            }
            n += 1;
            let found = findings(&buf, &id_set, &phone_set);
            if found.is_empty() {
                continue;
            }
            hits += 1;
            if listed.len() < LISTED {
                let what: Vec<String> = found
                    .iter()
                    .map(|(col, what, value)| format!("col {col} {what} {value}"))
                    .collect();
                listed.push(format!("{}:{n}: {}", file.display(), what.join(", ")));
            }
        }
        lines += n;
    }
    let scope = format!(
        "{} files, {lines} lines, {} ID numbers and {} phone numbers of the soak looked for",
        files.len(),
        id_set.len(),
        phone_set.len()
    );
    Ok(if hits == 0 {
        Check {
            name: "logs: no full ID number or phone number".into(),
            ok: true,
            detail: format!("{scope}: none in full, nor any other valid ID number or mobile number"),
        }
    } else {
        let more = if hits > listed.len() as u64 {
            format!(" (first {} listed)", listed.len())
        } else {
            String::new()
        };
        Check {
            name: "logs: no full ID number or phone number".into(),
            ok: false,
            detail: format!(
                "{hits} lines hold one in full{more}; {scope}:\n{}",
                listed.join("\n")
            ),
        }
    })
}

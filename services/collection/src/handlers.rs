//! Collection's handlers: enrollment events feed the projection; commands are decoded,
//! validated into domain values, applied, and answered.

use crate::domain::assessment::Category;
use crate::domain::base::{BaseInput, WageEvidence, determine_base};
use crate::domain::money::Money;
use crate::domain::policy::{PolicyRule, PolicyTable};
use crate::freezes::{DeadlineFreezes, PayerGroup};
use crate::payments::{self, fen};
use crate::{assess, projection, rules};
use async_trait::async_trait;
use contracts::collection::commands as c;
use contracts::collection::events as ev;
use contracts::ids::{CreditCode, IdNumber, YearMonth};
use contracts::{ErrorBody, ErrorCode, InsuranceType, Line, MessageKind};
use deadpool_postgres::Transaction;
use messaging::{Handled, Handler, HandlerError, Incoming, Names, Outgoing};
use rust_decimal::Decimal;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

pub struct CollectionHandler {
    pub names: Names,
    pub region: String,
    /// The freeze orders this service holds (set once the runtime is built; see `crate::build`).
    pub freeze: Arc<OnceLock<messaging::freeze::Freeze>>,
}

type HResult = Result<Handled, HandlerError>;

/// A month's deadlines by kind of payer (see `CollectionHandler::deadlines`): as the freeze
/// orders move them, and plain.
struct Deadlines {
    employer: chrono::NaiveDate,
    debit: chrono::NaiveDate,
    person: chrono::NaiveDate,
    plain: assess::PlainDeadlines,
}

fn reject(code: ErrorCode, field: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::Rejected(ErrorBody::new(code, message).with_field(field))
}

fn invalid(field: &str, message: impl Into<String>) -> HandlerError {
    reject(ErrorCode::InvalidField, field, message)
}

fn not_found(field: &str, message: impl Into<String>) -> HandlerError {
    reject(ErrorCode::NotFound, field, message)
}

fn conflict(field: &str, message: impl Into<String>) -> HandlerError {
    reject(ErrorCode::Conflict, field, message)
}

fn ym(field: &str, s: &str) -> Result<YearMonth, HandlerError> {
    YearMonth::parse(s).map_err(|e| invalid(field, e.to_string()))
}

fn money(field: &str, s: &str) -> Result<Decimal, HandlerError> {
    Money::parse(s)
        .map(Money::amount)
        .map_err(|e| invalid(field, e.to_string()))
}

fn ok<T: serde::Serialize>(result: &T, outgoing: Vec<Outgoing>) -> HResult {
    Ok(Handled {
        result: Some(serde_json::to_value(result).expect("results serialise")),
        outgoing,
        ..Default::default()
    })
}

fn category(s: &str) -> Category {
    match s {
        "employee" => Category::Employee,
        "retiree" => Category::Retiree,
        "resident" => Category::Resident,
        _ => Category::Flexible,
    }
}

/// The rule a contribution year's base is determined under: the latest-starting rule of the
/// type whose period touches the year, as it is applied now (with the preceding rule's
/// figures while its `in_use_from` month is not reached, see `rules::applied`).
fn rule_for_year(
    policy: &[(i64, PolicyRule)],
    in_use: &InUse,
    t: InsuranceType,
    year: i32,
) -> Option<PolicyRule> {
    let (start, end) = (YearMonth::new(year, 1).ok()?, YearMonth::new(year, 12).ok()?);
    policy
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.insurance_type == t && p.effective_from <= end)
        .filter(|p| p.effective_to.is_none_or(|to| to >= start))
        .max_by_key(|p| p.effective_from)
        .map(|p| rules::applied(policy, in_use, p))
}

/// The rules in use after their period began (see `rules::in_use`).
type InUse = std::collections::HashSet<(String, YearMonth)>;

fn month_of(first: chrono::NaiveDate) -> Result<YearMonth, HandlerError> {
    YearMonth::new(chrono::Datelike::year(&first), chrono::Datelike::month(&first))
        .map_err(|e| HandlerError::Permanent(anyhow::anyhow!("assessed month {first}: {e}")))
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The published spelling of a base's source (the table keeps the domain's own).
fn wire_source(s: crate::domain::base::BaseSource) -> c::BaseSource {
    use crate::domain::base::BaseSource as D;
    match s {
        D::PreviousYearAverage => c::BaseSource::PreviousYearAverage,
        D::CurrentYearAverage => c::BaseSource::CurrentYearAverage,
        D::CurrentMonth => c::BaseSource::CurrentMonth,
        D::StandardBase => c::BaseSource::StandardBase,
        D::ChosenBand => c::BaseSource::ChosenBand,
    }
}

fn wire_clamp(c: crate::domain::base::Clamp) -> c::BaseClamp {
    use crate::domain::base::Clamp as D;
    match c {
        D::None => c::BaseClamp::None,
        D::RaisedToFloor => c::BaseClamp::RaisedToFloor,
        D::LoweredToCap => c::BaseClamp::LoweredToCap,
    }
}

impl CollectionHandler {
    fn event<E: ev::CollectionEvent>(&self, line: Line, e: &E, cause: &Incoming) -> Outgoing {
        let body = serde_json::to_value(e).expect("events serialise");
        Outgoing::event(
            &self.names,
            line,
            contracts::collection::SERVICE,
            E::NAME,
            E::VERSION,
            body,
            Some(&cause.envelope),
        )
    }
}

#[async_trait]
impl Handler for CollectionHandler {
    /// Freeze orders scoped by payer kind: wages are declared by employers, batch debits
    /// are flexible workers' (批扣).
    fn payer_kind(&self, msg: &Incoming) -> Option<String> {
        match msg.name.as_str() {
            "declare-wages" => Some("employer".into()),
            "start-batch-debit" | "record-debit-results" | "set-debit-agreement" => Some("flexible".into()),
            _ => None,
        }
    }

    /// A payment names its assessment: the employer, or the paying person's category on
    /// the line (flexible, resident, retiree), from the coverage projection.
    async fn payer_kind_lookup(&self, db: &deadpool_postgres::Client, msg: &Incoming) -> Option<String> {
        if msg.name != "record-payment" {
            return None;
        }
        let id: uuid::Uuid = msg.body.get("assessment_id")?.as_str()?.parse().ok()?;
        let row = db
            .query_opt(
                "select case when a.payer_kind = 'employer' then 'employer'
                             else (select c.category from coverage c
                                   where c.person_id::text = a.payer_id and c.line = a.line
                                   order by c.from_month desc limit 1) end
                 from assessments a where a.assessment_id = $1",
                &[&id],
            )
            .await
            .ok()??;
        row.get(0)
    }

    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        if msg.kind == MessageKind::Event {
            return projection::apply(tx, msg).await;
        }
        match msg.name.as_str() {
            "set-policy" => self.set_policy(tx, msg).await,
            "get-policy" => self.get_policy(tx, msg).await,
            "declare-wages" => self.declare_wages(tx, msg).await,
            "assess-month" => self.assess_month(tx, msg).await,
            "record-payment" => self.record_payment(tx, msg).await,
            "detect-arrears" => self.detect_arrears(tx, msg).await,
            "start-batch-debit" => self.start_batch_debit(tx, msg).await,
            "record-debit-results" => self.record_debit_results(tx, msg).await,
            "set-debit-agreement" => self.set_debit_agreement(tx, msg).await,
            "employer-statement" => self.employer_statement(tx, msg).await,
            "contribution-history" => self.contribution_history(tx, msg).await,
            "list-arrears" => self.list_arrears(tx, msg).await,
            other => Err(HandlerError::Rejected(ErrorBody::new(
                ErrorCode::UnknownCommand,
                format!(
                    "collection has no command '{other}'; it has set-policy, get-policy, declare-wages, \
                     assess-month, record-payment, detect-arrears, start-batch-debit, record-debit-results, \
                     set-debit-agreement, employer-statement, contribution-history, list-arrears"
                ),
            ))),
        }
    }
}

impl CollectionHandler {
    async fn set_policy(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::SetPolicy = msg.decode()?;
        let t: InsuranceType = cmd
            .insurance_type
            .parse()
            .map_err(|e: String| invalid("insurance_type", e))?;
        if t.line() != msg.line {
            return Err(invalid(
                "insurance_type",
                format!("{t} belongs to the {} line", t.line()),
            ));
        }
        if cmd.reason.trim().is_empty() {
            return Err(invalid("reason", "a reason is required for every policy change"));
        }
        // Through the domain type: every figure is checked there.
        let mut raw = serde_json::to_value(&cmd).expect("serialises");
        if let Some(o) = raw.as_object_mut() {
            o.remove("reason");
            o.retain(|_, v| !v.is_null());
        }
        let rule: PolicyRule = serde_json::from_value(raw).map_err(|e| invalid("policy", e.to_string()))?;
        let mut others: Vec<(i64, PolicyRule)> = rules::current(tx, &cmd.region, Some(msg.line))
            .await?
            .into_iter()
            .filter(|(_, r)| r.insurance_type == t)
            .collect();
        // A rule for the same start month is replaced; an open-ended older rule is closed the
        // month before the new one starts (as a new version of it).
        let replaced: Vec<i64> = others
            .iter()
            .filter(|(_, r)| r.effective_from == rule.effective_from)
            .map(|(id, _)| *id)
            .collect();
        others.retain(|(id, _)| !replaced.contains(id));
        let mut closing = Vec::new();
        for (id, r) in &mut others {
            if r.effective_to.is_none() && r.effective_from < rule.effective_from {
                r.effective_to = rule.effective_from.prev();
                closing.push((*id, r.clone()));
            }
        }
        let mut all: Vec<PolicyRule> = others.iter().map(|(_, r)| r.clone()).collect();
        all.push(rule.clone());
        PolicyTable::new(all).map_err(|e| match e {
            crate::domain::policy::PolicyError::Overlap { .. } => conflict("effective_from", e.to_string()),
            other => invalid("policy", other.to_string()),
        })?;
        // The rows being replaced or closed leave the unique index of current rules before
        // their successors are inserted (pointing at themselves for the moment, as the
        // successor's id is not known yet); the same transaction then points them at it.
        let leaving: Vec<i64> = replaced
            .iter()
            .copied()
            .chain(closing.iter().map(|(id, _)| *id))
            .collect();
        tx.execute(
            "update policy_rules set superseded_by = rule_id where rule_id = any($1)",
            &[&leaving],
        )
        .await?;
        for (old, r) in &closing {
            let new_id =
                rules::insert(tx, r, "closed by a newer rule", Some(msg.envelope.message_id)).await?;
            tx.execute(
                "update policy_rules set superseded_by = $2 where rule_id = $1",
                &[old, &new_id],
            )
            .await?;
        }
        let version = rules::insert(tx, &rule, cmd.reason.trim(), Some(msg.envelope.message_id)).await?;
        for old in replaced {
            tx.execute(
                "update policy_rules set superseded_by = $2 where rule_id = $1",
                &[&old, &version],
            )
            .await?;
        }
        let (bases_rederived, months_reassessed, rederived_events) = if cmd.region == self.region {
            self.rederive(tx, msg, &rule).await?
        } else {
            (0, 0, Vec::new())
        };
        let event = ev::PolicyChanged {
            region: cmd.region.clone(),
            insurance_type: t,
            effective_from: rule.effective_from.to_string(),
            version,
            reason: cmd.reason.trim().to_owned(),
            line: msg.line,
        };
        let mut outgoing = rederived_events;
        outgoing.push(self.event(msg.line, &event, msg));
        let result = c::SetPolicyResult {
            version,
            bases_rederived,
            months_reassessed,
        };
        Ok(Handled {
            result: Some(serde_json::to_value(result).expect("results serialise")),
            outgoing,
            wrote_outbox: months_reassessed > 0,
        })
    }

    /// A policy change re-derives what it affects, for the region this service assesses:
    /// the bases of the years the rule's period touches are determined again from the latest
    /// declared wages under the rules now in force (a new floor or cap applied to them), and
    /// every month of the period already assessed is assessed again, so that the difference
    /// becomes adjustment items (补差) and `contribution-assessed` adjustments, never a
    /// rewrite of what was assessed. Returns (bases changed, months re-assessed, events).
    async fn rederive(
        &self,
        tx: &Transaction<'_>,
        msg: &Incoming,
        rule: &PolicyRule,
    ) -> Result<(i64, i64, Vec<Outgoing>), HandlerError> {
        let (changed, events) = self.rederive_bases(tx, msg, rule).await?;
        let months = self
            .assessed_months(tx, msg.line, rule.effective_from, rule.effective_to)
            .await?;
        let mut reassessed = 0i64;
        for month in months {
            let Some(d) = self.deadlines(tx, msg.line, month).await? else {
                continue;
            };
            self.run_month(tx, msg, month, &d).await?;
            reassessed += 1;
        }
        Ok((changed, reassessed, events))
    }

    /// The months of `line` assessed so far from `from` to `to` (inclusive; open: all later).
    async fn assessed_months(
        &self,
        tx: &Transaction<'_>,
        line: Line,
        from: YearMonth,
        to: Option<YearMonth>,
    ) -> Result<Vec<YearMonth>, HandlerError> {
        let rows = tx
            .query(
                "select distinct month from assessment_runs
                 where line = $1 and month >= $2 and ($3::date is null or month <= $3) order by month",
                &[&line.as_str(), &from.first_day(), &to.map(YearMonth::first_day)],
            )
            .await?;
        rows.iter().map(|r| month_of(r.get(0))).collect()
    }

    /// Determines again, from the latest declared wages and under the rules as they are
    /// applied now, the bases of `rule`'s type for the years its period touches; a base that
    /// changes is updated and announced (`base-determined`). Returns (bases changed, events).
    async fn rederive_bases(
        &self,
        tx: &Transaction<'_>,
        msg: &Incoming,
        rule: &PolicyRule,
    ) -> Result<(i64, Vec<Outgoing>), HandlerError> {
        let t = rule.insurance_type;
        let policy = rules::current(tx, &self.region, Some(msg.line)).await?;
        let in_use = rules::in_use(tx, &self.region).await?;
        let to_year = rule.effective_to.map(YearMonth::year);
        let rows = tx
            .query(
                "select b.person_id, p.id_number, b.year, p.category, b.base,
                        d.previous_year_average, d.current_year_average, d.current_month, d.chosen_base
                 from bases b join persons p using (person_id)
                 left join lateral (
                     select w.* from wage_declarations w
                     where w.person_id = b.person_id and w.year = b.year
                     order by w.declaration_id desc limit 1) d on true
                 where b.insurance_type = $1 and b.year >= $2 and ($3::int is null or b.year <= $3)
                 order by b.year, p.id_number",
                &[&t.as_str(), &rule.effective_from.year(), &to_year],
            )
            .await?;
        let mut changed = 0i64;
        let mut events = Vec::new();
        for r in &rows {
            let (person, id_number, year): (Uuid, String, i32) = (r.get(0), r.get(1), r.get(2));
            let before: Decimal = r.get(4);
            let Some(in_force) = rule_for_year(&policy, &in_use, t, year) else {
                continue;
            };
            let input = match category(&r.get::<_, String>(3)) {
                Category::Employee => BaseInput::Employee(WageEvidence {
                    previous_year_average: r.get(5),
                    current_year_average: r.get(6),
                    current_month: r.get(7),
                }),
                Category::Flexible => BaseInput::Flexible {
                    chosen_base: r.get::<_, Option<Decimal>>(8).map(Money::round_fen),
                },
                Category::Retiree => BaseInput::Retiree,
                Category::Resident => BaseInput::Resident,
            };
            // A declaration the new figures no longer admit (a chosen band outside them) keeps
            // its base until the person declares again; it is not clamped silently.
            let Ok(d) = determine_base(&input, &in_force) else {
                continue;
            };
            if d.base.amount() == before {
                continue;
            }
            tx.execute(
                "update bases set base = $4, source = $5, clamp = $6, determined_at = now()
                 where person_id = $1 and insurance_type = $2 and year = $3",
                &[
                    &person,
                    &t.as_str(),
                    &year,
                    &d.base.amount(),
                    &snake(&d.source),
                    &snake(&d.clamped),
                ],
            )
            .await?;
            changed += 1;
            let event = ev::BaseDetermined {
                person_id: person.to_string(),
                id_number,
                year,
                bases: vec![ev::DeterminedBase {
                    insurance_type: t,
                    base: d.base.to_string(),
                    source: wire_source(d.source),
                    clamp: wire_clamp(d.clamped),
                }],
                line: msg.line,
            };
            events.push(self.event(msg.line, &event, msg));
        }
        Ok((changed, events))
    }

    /// Assesses `month` with deadlines `d` (`assess::run`), then gives the assessments the run
    /// created for residents' yearly premiums their own deadline (see
    /// [`CollectionHandler::premium_deadlines`]).
    async fn run_month(
        &self,
        tx: &Transaction<'_>,
        msg: &Incoming,
        month: YearMonth,
        d: &Deadlines,
    ) -> Result<assess::RunOutcome, HandlerError> {
        let run = assess::Run {
            region: &self.region,
            line: msg.line,
            month: month.first_day(),
            employer_deadline: d.employer,
            debit_deadline: d.debit,
            person_deadline: d.person,
            plain: d.plain,
        };
        let outcome = assess::run(tx, &self.names, &run, &msg.envelope).await?;
        if outcome.payers > 0 {
            self.premium_deadlines(tx, msg.line, month, outcome.run_id)
                .await?;
        }
        Ok(outcome)
    }

    /// A resident's yearly premium is due by the close of its collection period (January's),
    /// or by the rule's deadline of the month for a person enrolled during the year
    /// (`PolicyRule::premium_due_date`), not by the persons' monthly deadline the run gave
    /// every person it assessed for the first time: those assessments of run `run_id` holding a
    /// yearly-premium type get it (plain, and as the freeze orders held now move it).
    async fn premium_deadlines(
        &self,
        tx: &Transaction<'_>,
        line: Line,
        month: YearMonth,
        run_id: Uuid,
    ) -> Result<(), HandlerError> {
        let policy = rules::current(tx, &self.region, Some(line)).await?;
        let premium: Vec<&PolicyRule> = policy
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.yearly_premium.is_some() && r.contains(month))
            .collect();
        if premium.is_empty() {
            return Ok(());
        }
        let calendar = rules::calendar(tx).await?;
        let types: Vec<&str> = premium.iter().map(|r| r.insurance_type.as_str()).collect();
        let Some(plain) = premium.iter().map(|r| r.premium_due_date(month, &calendar)).min() else {
            return Ok(());
        };
        let effective =
            self.deadline_freezes(line, PayerGroup::Person)
                .deadline(plain, month.first_day(), &calendar);
        let ids: Vec<Uuid> = tx
            .query(
                "select a.assessment_id from assessments a
                 where a.created_run = $1 and a.payer_kind = 'person'
                   and exists (select 1 from assessment_items i
                               where i.assessment_id = a.assessment_id and i.insurance_type = any($2))",
                &[&run_id, &types],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        set_deadlines(tx, run_id, &ids, plain, effective).await
    }

    /// Rules of the line whose `in_use_from` month `month` reaches come into use, once
    /// (`policy_in_use`), before `month` itself is assessed (Hangzhou 2020: the assessment of
    /// July 2020 puts the 2020 base in use). The bases of their periods are re-derived under
    /// their own figures, and the months of their periods assessed before (January-June,
    /// provisionally on the preceding rule's figures) are assessed again, so that the
    /// differences are settled up or refunded (多退少补) as adjustment items and
    /// `contribution-assessed` adjustments, never a rewrite. A month that was paid in full
    /// before its settle-up has the difference due with `month`'s declaration: its deadline
    /// moves to `month`'s. Returns (rules, bases re-derived, months re-assessed, events).
    async fn bring_into_use(
        &self,
        tx: &Transaction<'_>,
        msg: &Incoming,
        month: YearMonth,
    ) -> Result<(i64, i64, i64, Vec<Outgoing>), HandlerError> {
        let policy = rules::current(tx, &self.region, Some(msg.line)).await?;
        let mut reached = Vec::new();
        for (_, r) in &policy {
            let Some(from) = r.in_use_from.filter(|from| *from <= month) else {
                continue;
            };
            let n = tx
                .execute(
                    "insert into policy_in_use (region, insurance_type, effective_from, in_use_from, message_id)
                     values ($1, $2, $3, $4, $5) on conflict do nothing",
                    &[
                        &self.region,
                        &r.insurance_type.as_str(),
                        &r.effective_from.first_day(),
                        &from.first_day(),
                        &msg.envelope.message_id,
                    ],
                )
                .await?;
            if n == 1 {
                reached.push(r.clone());
            }
        }
        if reached.is_empty() {
            return Ok((0, 0, 0, Vec::new()));
        }
        let (mut bases, mut events) = (0i64, Vec::new());
        for r in &reached {
            let (n, e) = self.rederive_bases(tx, msg, r).await?;
            bases += n;
            events.extend(e);
        }
        let Some(earliest) = reached.iter().map(|r| r.effective_from).min() else {
            return Ok((0, 0, 0, Vec::new()));
        };
        let months: Vec<YearMonth> = self
            .assessed_months(tx, msg.line, earliest, month.prev())
            .await?
            .into_iter()
            .filter(|m| reached.iter().any(|r| r.contains(*m)))
            .collect();
        let settle_by = self.deadlines(tx, msg.line, month).await?;
        let mut reassessed = 0i64;
        for m in months {
            let Some(d) = self.deadlines(tx, msg.line, m).await? else {
                continue;
            };
            let outcome = self.run_month(tx, msg, m, &d).await?;
            reassessed += 1;
            let Some(by) = &settle_by else {
                continue;
            };
            // Paid in full before this run and owing more after it: the difference is due
            // with `month`'s declaration, not by the month's own (long past) deadline.
            let rows = tx
                .query(
                    // Items are found through their month's assessments (no index reads
                    // items by run).
                    "select a.assessment_id, a.payer_kind = 'employer'
                     from assessments a
                     join (select i.assessment_id, sum(i.amount) as change
                           from assessments m join assessment_items i using (assessment_id)
                           where m.line = $2 and m.month = $3 and i.run_id = $1
                           group by i.assessment_id) i using (assessment_id)
                     where i.change > 0 and a.paid >= a.due - i.change and a.paid > 0",
                    &[&outcome.run_id, &msg.line.as_str(), &m.first_day()],
                )
                .await?;
            for employer in [true, false] {
                let ids: Vec<Uuid> = rows
                    .iter()
                    .filter(|r| r.get::<_, bool>(1) == employer)
                    .map(|r| r.get(0))
                    .collect();
                let (plain, effective) = if employer {
                    (by.plain.employer, by.employer)
                } else {
                    (by.plain.person, by.person)
                };
                set_deadlines(tx, outcome.run_id, &ids, plain, effective).await?;
            }
        }
        Ok((reached.len() as i64, bases, reassessed, events))
    }

    async fn set_debit_agreement(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::SetDebitAgreement = msg.decode()?;
        let id = IdNumber::parse(&cmd.id_number)
            .map_err(|e| reject(ErrorCode::InvalidIdNumber, "id_number", e.to_string()))?;
        let from = ym("from_month", &cmd.from_month)?;
        let bank = cmd.bank.as_deref().map(str::trim).filter(|b| !b.is_empty());
        let account = cmd
            .account
            .as_deref()
            .map(|a| a.split_whitespace().collect::<String>());
        if let Some(a) = &account
            && !((12..=30).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid("account", "a bank account number is 12 to 30 digits"));
        }
        if cmd.signed && account.is_none() {
            return Err(invalid(
                "account",
                "a signed agreement names the account to debit",
            ));
        }
        let row = tx
            .query_opt(
                "select p.person_id, p.category from persons p
                 where p.id_number = $1 and exists (select 1 from coverage c where c.person_id = p.person_id and c.line = $2)",
                &[&id.as_str(), &msg.line.as_str()],
            )
            .await?
            .ok_or_else(|| not_found("id_number", format!("{id} has no {} line coverage", msg.line)))?;
        let (person, cat): (Uuid, String) = (row.get(0), row.get(1));
        if cat != "flexible" {
            return Err(reject(
                ErrorCode::NotEligible,
                "id_number",
                format!("bank batch debit is for flexible workers; {id} is a {cat}"),
            ));
        }
        tx.execute(
            "insert into debit_agreements (person_id, line, from_month, signed, bank, account, message_id)
             values ($1, $2, $3, $4, $5, $6, $7)
             on conflict (person_id, line, from_month) do update
             set signed = excluded.signed, bank = excluded.bank, account = excluded.account,
                 message_id = excluded.message_id, recorded_at = now()",
            &[
                &person,
                &msg.line.as_str(),
                &from.first_day(),
                &cmd.signed,
                &bank,
                &account,
                &msg.envelope.message_id,
            ],
        )
        .await?;
        ok(
            &c::SetDebitAgreementResult {
                person_id: person.to_string(),
                signed: cmd.signed,
                from_month: from.to_string(),
            },
            vec![],
        )
    }

    async fn get_policy(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::GetPolicy = msg.decode()?;
        let t: InsuranceType = cmd
            .insurance_type
            .parse()
            .map_err(|e: String| invalid("insurance_type", e))?;
        let month = ym("month", &cmd.month)?;
        let found = rules::current(tx, &cmd.region, None)
            .await?
            .into_iter()
            .find(|(_, r)| r.insurance_type == t && r.contains(month))
            .ok_or_else(|| {
                not_found(
                    "month",
                    format!("no {t} rule for region {} in {month}", cmd.region),
                )
            })?;
        // The domain rule and the published view share their serde shape; a field one has and
        // the other lacks fails here instead of reaching the wire unannounced.
        let rule: c::PolicyRuleView = serde_json::to_value(&found.1)
            .and_then(serde_json::from_value)
            .map_err(|e| HandlerError::Permanent(anyhow::anyhow!("policy rule {}: {e}", found.0)))?;
        ok(
            &c::GetPolicyResult {
                version: found.0,
                rule,
            },
            vec![],
        )
    }

    async fn declare_wages(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::DeclareWages = msg.decode()?;
        if !(1990..=2200).contains(&cmd.year) {
            return Err(invalid(
                "year",
                format!("{} is not a contribution year", cmd.year),
            ));
        }
        if cmd.wages.is_empty() {
            return Err(invalid("wages", "at least one declaration is required"));
        }
        let employer = cmd
            .employer_credit_code
            .as_deref()
            .map(|c| {
                CreditCode::parse(c).map_err(|e| {
                    reject(
                        ErrorCode::InvalidCreditCode,
                        "employer_credit_code",
                        e.to_string(),
                    )
                })
            })
            .transpose()?;
        let policy = rules::current(tx, &self.region, Some(msg.line)).await?;
        let in_use = rules::in_use(tx, &self.region).await?;
        let year_start = YearMonth::new(cmd.year, 1).map_err(|e| invalid("year", e.to_string()))?;
        let year_end = YearMonth::new(cmd.year, 12).map_err(|e| invalid("year", e.to_string()))?;
        let mut views = Vec::new();
        let mut outgoing = Vec::new();
        for (i, w) in cmd.wages.iter().enumerate() {
            let field = format!("wages[{i}].id_number");
            let id = IdNumber::parse(&w.id_number)
                .map_err(|e| reject(ErrorCode::InvalidIdNumber, &field, e.to_string()))?;
            let amount = |name: &str, v: &Option<String>| -> Result<Option<Decimal>, HandlerError> {
                v.as_deref()
                    .map(|s| money(&format!("wages[{i}].{name}"), s))
                    .transpose()
            };
            let evidence = WageEvidence {
                previous_year_average: amount("previous_year_average", &w.previous_year_average)?,
                current_year_average: amount("current_year_average", &w.current_year_average)?,
                current_month: amount("current_month", &w.current_month)?,
            };
            let chosen = amount("chosen_base", &w.chosen_base)?;
            // The person's coverage on this line in that year: which types, which category.
            let rows = tx
                .query(
                    "select p.person_id, c.insurance_type, c.category, c.employer_credit_code
                     from persons p join coverage c using (person_id)
                     where p.id_number = $1 and c.line = $2
                       and c.from_month <= $4 and (c.to_month is null or c.to_month >= $3)
                     order by c.insurance_type, c.from_month desc",
                    &[
                        &id.as_str(),
                        &msg.line.as_str(),
                        &year_start.first_day(),
                        &year_end.first_day(),
                    ],
                )
                .await?;
            if rows.is_empty() {
                return Err(not_found(
                    &field,
                    format!("{id} has no {} line coverage in {}", msg.line, cmd.year),
                ));
            }
            let person_id: Uuid = rows[0].get(0);
            if let Some(code) = &employer {
                let employs = rows
                    .iter()
                    .any(|r| r.get::<_, Option<String>>(3).as_deref() == Some(code.as_str()));
                if !employs {
                    return Err(invalid(
                        &field,
                        format!("{id} is not covered through employer {code} in {}", cmd.year),
                    ));
                }
            }
            tx.execute(
                "insert into wage_declarations (person_id, year, employer_credit_code, previous_year_average,
                     current_year_average, current_month, chosen_base, message_id)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &person_id,
                    &cmd.year,
                    &employer.as_ref().map(|c| c.as_str()),
                    &evidence.previous_year_average,
                    &evidence.current_year_average,
                    &evidence.current_month,
                    &chosen,
                    &msg.envelope.message_id,
                ],
            )
            .await?;
            let mut determined = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for r in &rows {
                let t: InsuranceType = match r.get::<_, String>(1).parse() {
                    Ok(t) => t,
                    Err(_) => continue,
                };
                if !seen.insert(t) {
                    continue;
                }
                let cat = category(&r.get::<_, String>(2));
                let input = match cat {
                    Category::Employee => BaseInput::Employee(evidence),
                    Category::Flexible => BaseInput::Flexible {
                        chosen_base: chosen.map(Money::round_fen),
                    },
                    Category::Retiree => BaseInput::Retiree,
                    Category::Resident => BaseInput::Resident,
                };
                let Some(rule) = rule_for_year(&policy, &in_use, t, cmd.year) else {
                    return Err(not_found(
                        &field,
                        format!("no {t} policy rule for region {} in {}", self.region, cmd.year),
                    ));
                };
                let d = determine_base(&input, &rule)
                    .map_err(|e| invalid(&format!("wages[{i}]"), e.to_string()))?;
                let (source, clamp) = (snake(&d.source), snake(&d.clamped));
                tx.execute(
                    "insert into bases (person_id, insurance_type, year, base, source, clamp)
                     values ($1, $2, $3, $4, $5, $6)
                     on conflict (person_id, insurance_type, year) do update
                     set base = excluded.base, source = excluded.source, clamp = excluded.clamp, determined_at = now()",
                    &[&person_id, &t.as_str(), &cmd.year, &d.base.amount(), &source, &clamp],
                )
                .await?;
                let (source, clamp) = (wire_source(d.source), wire_clamp(d.clamped));
                determined.push(ev::DeterminedBase {
                    insurance_type: t,
                    base: d.base.to_string(),
                    source,
                    clamp,
                });
                views.push(c::BaseView {
                    id_number: id.as_str().to_owned(),
                    insurance_type: t,
                    year: cmd.year,
                    base: d.base.to_string(),
                    source,
                    clamp,
                });
            }
            let event = ev::BaseDetermined {
                person_id: person_id.to_string(),
                id_number: id.as_str().to_owned(),
                year: cmd.year,
                bases: determined,
                line: msg.line,
            };
            outgoing.push(self.event(msg.line, &event, msg));
        }
        ok(&c::DeclareWagesResult { bases: views }, outgoing)
    }

    /// The deadlines of `month` on `line`: for employers, for flexible workers with a bank
    /// batch-debit agreement, and for everyone else paying alone; each the earliest among the
    /// line's rules (so nobody's deadline is later than its rule says), in the collection month
    /// the rule names, and replaced by a published override for the month where there is one.
    async fn deadlines(
        &self,
        tx: &Transaction<'_>,
        line: Line,
        month: YearMonth,
    ) -> Result<Option<Deadlines>, HandlerError> {
        let policy = rules::current(tx, &self.region, Some(line)).await?;
        let calendar = rules::calendar(tx).await?;
        let in_force: Vec<&PolicyRule> = policy
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.contains(month))
            .collect();
        // A yearly premium has its own deadline (`premium_deadlines`): it makes nobody's
        // monthly deadline earlier, unless it is all the line has in force.
        let monthly: Vec<&PolicyRule> = in_force
            .iter()
            .copied()
            .filter(|r| r.yearly_premium.is_none())
            .collect();
        let in_force = if monthly.is_empty() { in_force } else { monthly };
        let due = |cat: Category, debit: bool| {
            in_force
                .iter()
                .map(|r| r.due_date(month, cat, debit, &calendar, &[]))
                .min()
        };
        let (Some(employer), Some(debit), Some(person)) = (
            due(Category::Employee, false),
            due(Category::Flexible, true),
            due(Category::Flexible, false),
        ) else {
            return Ok(None);
        };
        let first = month.first_day();
        let employer = rules::deadline_override(tx, &self.region, first, "employer")
            .await?
            .unwrap_or(employer);
        let person_override = rules::deadline_override(tx, &self.region, first, "person").await?;
        let plain = assess::PlainDeadlines {
            employer,
            debit: person_override.unwrap_or(debit),
            person: person_override.unwrap_or(person),
        };
        let employers = self.deadline_freezes(line, PayerGroup::Employer);
        let persons = self.deadline_freezes(line, PayerGroup::Person);
        Ok(Some(Deadlines {
            employer: employers.deadline(plain.employer, first, &calendar),
            debit: persons.deadline(plain.debit, first, &calendar),
            person: persons.deadline(plain.person, first, &calendar),
            plain,
        }))
    }

    /// The freezes of `line` that move the deadlines of `payer`, from the orders held now.
    fn deadline_freezes(&self, line: Line, payer: PayerGroup) -> DeadlineFreezes {
        self.freeze
            .get()
            .map(|f| DeadlineFreezes::of(&f.book(), line, payer, f.now()))
            .unwrap_or_default()
    }

    /// Derives the assessment's effective deadline again from its plain one and the orders in
    /// force, before a payment is judged against it. While an open-ended freeze holds the
    /// deadline, a payment is on time (the deadline runs at least until the thaw).
    async fn refresh_deadline(
        &self,
        tx: &Transaction<'_>,
        a: &mut payments::Assessment,
        paid_at: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<(), HandlerError> {
        let freezes = self.deadline_freezes(a.line, PayerGroup::from_kind(&a.payer_kind));
        if freezes.is_empty() && a.deadline == a.plain_deadline {
            // No order moves it (the usual case): no calendar to read.
            return Ok(());
        }
        let calendar = rules::calendar(tx).await?;
        let mut effective = freezes.deadline(a.plain_deadline, a.month, &calendar);
        if freezes.held(effective) {
            let paid_on = paid_at.with_timezone(&contracts::freeze::cst()).date_naive();
            effective = effective.max(paid_on);
        }
        if effective != a.deadline {
            tx.execute(
                "update assessments set deadline = $2, updated_at = now() where assessment_id = $1",
                &[&a.id, &effective],
            )
            .await?;
            a.deadline = effective;
        }
        Ok(())
    }

    async fn assess_month(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::AssessMonth = msg.decode()?;
        let month = ym("month", &cmd.month)?;
        let d = self.deadlines(tx, msg.line, month).await?.ok_or_else(|| {
            not_found(
                "month",
                format!("no {} line policy in force for {month}", msg.line),
            )
        })?;
        let (brought, bases_rederived, months_reassessed, outgoing) =
            self.bring_into_use(tx, msg, month).await?;
        let outcome = self.run_month(tx, msg, month, &d).await?;
        tracing::info!(%month, line = %msg.line, payers = outcome.payers, items = outcome.items,
            rules_brought_into_use = brought, months_reassessed, "month assessed");
        let result = c::AssessMonthResult {
            run_id: outcome.run_id.to_string(),
            month: month.to_string(),
            payers_assessed: outcome.payers,
            items_written: outcome.items,
            total_change: fen(outcome.total_change),
            skipped: outcome.skipped,
            rules_brought_into_use: brought,
            bases_rederived,
            months_reassessed,
        };
        Ok(Handled {
            result: Some(serde_json::to_value(result).expect("serialises")),
            outgoing,
            wrote_outbox: outcome.payers > 0 || months_reassessed > 0,
        })
    }

    async fn record_payment(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RecordPayment = msg.decode()?;
        let id: Uuid = cmd
            .assessment_id
            .parse()
            .map_err(|_| invalid("assessment_id", "not an assessment id (UUID)"))?;
        let amount = money("amount", &cmd.amount)?;
        if amount <= Decimal::ZERO {
            return Err(invalid("amount", "a payment is more than 0.00"));
        }
        let receipt = cmd.tax_receipt_no.trim();
        if receipt.is_empty() || receipt.len() > 64 {
            return Err(invalid(
                "tax_receipt_no",
                "a tax receipt number of 1 to 64 characters is required",
            ));
        }
        let mut a = payments::lock(tx, id)
            .await?
            .filter(|a| a.line == msg.line)
            .ok_or_else(|| not_found("assessment_id", format!("no {} line assessment {id}", msg.line)))?;
        // The same receipt again (a resend with a new message id) is answered, not recorded twice.
        if let Some(row) = tx
            .query_opt(
                "select assessment_id, amount from payments where receipt_no = $1",
                &[&receipt],
            )
            .await?
        {
            let (prior, prior_amount): (Uuid, Decimal) = (row.get(0), row.get(1));
            if prior == id && prior_amount == amount {
                return ok(&a.status(), vec![]);
            }
            return Err(conflict(
                "tax_receipt_no",
                format!("receipt {receipt} was already recorded for another payment"),
            ));
        }
        let in_debit = tx
            .query_opt(
                "select b.batch_id from debit_items i join debit_batches b using (batch_id)
                 where i.assessment_id = $1 and b.closed_at is null",
                &[&id],
            )
            .await?;
        if let Some(row) = in_debit {
            let batch: Uuid = row.get(0);
            return Err(conflict(
                "assessment_id",
                format!(
                    "the assessment is in bank batch debit {batch}; no other payment until the bank reports"
                ),
            ));
        }
        let payment = payments::Payment {
            amount,
            paid_at: cmd.paid_at,
            receipt_no: receipt,
            channel: "tax",
        };
        self.refresh_deadline(tx, &mut a, cmd.paid_at).await?;
        let events = payments::apply(tx, &self.names, &mut a, &payment, &msg.envelope).await?;
        ok(&a.status(), events)
    }

    /// Flags every open assessment of the line whose deadline has passed, judged by when
    /// payments were made: a month is judged only once the policy's arrival time (working
    /// days for a payment to reach the fund) has passed after its deadline, so money paid on
    /// the deadline and arriving days later is never late. Each flagged month says from when
    /// benefits are affected (the 1st of the month after the deadline, or the policy's start
    /// date if later).
    ///
    /// Deadlines are first derived again from the freeze orders held now (`crate::freezes`):
    /// a deadline a freeze of the line covered is extended by it, and one that an open-ended
    /// freeze in force covers is not judged at all until the thaw. So no payer is ever in
    /// arrears because the system could not take its money (除系统影响外), and
    /// `system_caused` stays false: the freeze moves the deadline instead.
    async fn detect_arrears(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::DetectArrears = msg.decode()?;
        let as_of = cmd.as_of.unwrap_or_else(crate::today);
        let policy = rules::current(tx, &self.region, Some(msg.line)).await?;
        let calendar = rules::calendar(tx).await?;
        let arrival = policy
            .iter()
            .map(|(_, r)| r.arrival_working_days)
            .max()
            .unwrap_or(0);
        let benefits_from = policy.iter().filter_map(|(_, r)| r.benefits_affected_from).max();
        let open = tx
            .query(
                "select distinct payer_kind, plain_deadline, month, deadline from assessments
                 where line = $1 and not in_arrears and paid < due",
                &[&msg.line.as_str()],
            )
            .await?;
        let employers = self.deadline_freezes(msg.line, PayerGroup::Employer);
        let persons = self.deadline_freezes(msg.line, PayerGroup::Person);
        let (mut kinds, mut judged, mut held) =
            (Vec::<String>::new(), Vec::<chrono::NaiveDate>::new(), 0usize);
        for r in &open {
            let (kind, plain, month, stored): (
                String,
                chrono::NaiveDate,
                chrono::NaiveDate,
                chrono::NaiveDate,
            ) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let freezes = if kind == "employer" { &employers } else { &persons };
            let effective = freezes.deadline(plain, month, &calendar);
            if freezes.held(effective) {
                held += 1;
                continue;
            }
            if effective != stored {
                tx.execute(
                    "update assessments set deadline = $5, updated_at = now()
                     where line = $1 and payer_kind = $2 and plain_deadline = $3 and month = $4
                       and deadline = $6 and not in_arrears and paid < due",
                    &[&msg.line.as_str(), &kind, &plain, &month, &effective, &stored],
                )
                .await?;
            }
            if effective < as_of && calendar.add_working_days(effective, arrival) < as_of {
                kinds.push(kind);
                judged.push(effective);
            }
        }
        let mut headers = std::collections::BTreeMap::new();
        messaging::trace::continue_from(&mut headers, &msg.envelope.headers);
        let headers = serde_json::to_value(headers).unwrap_or_default();
        let key = format!("{}.collection.arrears-detected", msg.line);
        // Set-based: flag every judged open assessment and write one event each.
        let n = tx
            .execute(
                "with flagged as (
                     update assessments set in_arrears = true, updated_at = now(),
                         system_caused = false,
                         benefits_affected_from =
                             greatest((date_trunc('month', deadline) + interval '1 month')::date, $9::date)
                     where line = $1 and not in_arrears and paid < due and deadline < $2
                       and (payer_kind, deadline) in (select * from unnest($7::text[], $8::date[]))
                     returning assessment_id, payer_kind, payer_id, month, due - paid as outstanding, deadline,
                               benefits_affected_from, system_caused
                 )
                 insert into outbox (message_id, exchange, routing_key, message_type, correlation_id, headers, body)
                 select uuid_v7(), $3, $4, 'collection.arrears-detected.v1', $5, $6,
                        jsonb_strip_nulls(jsonb_build_object('assessment_id', f.assessment_id, 'payer_kind', f.payer_kind,
                            'payer_id', f.payer_id, 'month', to_char(f.month, 'YYYY-MM'),
                            'outstanding', to_char(f.outstanding, 'FM999999999990.00'), 'deadline', f.deadline,
                            'persons', coalesce((select jsonb_agg(distinct i.person_id::text) from assessment_items i
                                                 where i.assessment_id = f.assessment_id and i.share <> 'rounding'), '[]'::jsonb),
                            'line', $1::text, 'benefits_affected_from', f.benefits_affected_from,
                            'system_caused', f.system_caused))
                 from flagged f order by f.month, f.payer_kind, f.payer_id",
                &[
                    &msg.line.as_str(),
                    &as_of,
                    &self.names.events_exchange(),
                    &key,
                    &msg.envelope.correlation(),
                    &headers,
                    &kinds,
                    &judged,
                    &benefits_from,
                ],
            )
            .await?;
        tracing::info!(line = %msg.line, %as_of, newly = n, held_by_freeze = held, "arrears detected");
        Ok(Handled {
            result: Some(
                serde_json::to_value(c::DetectArrearsResult {
                    newly_in_arrears: n as i64,
                })
                .expect("serialises"),
            ),
            outgoing: vec![],
            wrote_outbox: n > 0,
        })
    }

    async fn start_batch_debit(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::StartBatchDebit = msg.decode()?;
        let month = ym("month", &cmd.month)?;
        let batch = Uuid::now_v7();
        // Flexible workers' open assessments of the month not already in an open batch.
        let rows = tx
            .query(
                "select a.assessment_id, a.payer_id, a.due - a.paid
                 from assessments a join persons p on p.person_id::text = a.payer_id
                 where a.line = $1 and a.month = $2 and a.payer_kind = 'person' and p.category = 'flexible'
                   and a.paid < a.due
                   -- only flexible workers whose latest agreement for the month is signed
                   and coalesce((select d.signed from debit_agreements d
                                 where d.person_id = p.person_id and d.line = $1 and d.from_month <= $2
                                 order by d.from_month desc limit 1), false)
                   and not exists (select 1 from debit_items i join debit_batches b using (batch_id)
                                   where i.assessment_id = a.assessment_id and b.closed_at is null)
                 order by a.payer_id",
                &[&msg.line.as_str(), &month.first_day()],
            )
            .await?;
        let items: Vec<ev::DebitItem> = rows
            .iter()
            .map(|r| ev::DebitItem {
                assessment_id: r.get::<_, Uuid>(0).to_string(),
                person_id: r.get(1),
                amount: fen(r.get(2)),
            })
            .collect();
        let total: Decimal = rows.iter().map(|r| r.get::<_, Decimal>(2)).sum();
        let result = c::BatchDebitResult {
            batch_id: batch.to_string(),
            item_count: items.len() as i64,
            total: fen(total),
        };
        if items.is_empty() {
            return ok(&result, vec![]);
        }
        tx.execute(
            "insert into debit_batches (batch_id, line, month, item_count, total) values ($1, $2, $3, $4, $5)",
            &[&batch, &msg.line.as_str(), &month.first_day(), &(items.len() as i32), &total],
        )
        .await?;
        // One statement for the whole batch, not a round trip per item.
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        let persons: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
        let amounts: Vec<Decimal> = rows.iter().map(|r| r.get(2)).collect();
        tx.execute(
            "insert into debit_items (batch_id, assessment_id, person_id, amount)
             select $1, i.assessment_id, i.person_id, i.amount
             from unnest($2::uuid[], $3::text[], $4::numeric[]) as i(assessment_id, person_id, amount)",
            &[&batch, &ids, &persons, &amounts],
        )
        .await?;
        let event = ev::BatchDebitRequested {
            batch_id: batch.to_string(),
            month: month.to_string(),
            item_count: items.len() as i64,
            total: fen(total),
            items,
            line: msg.line,
        };
        ok(&result, vec![self.event(msg.line, &event, msg)])
    }

    async fn record_debit_results(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RecordDebitResults = msg.decode()?;
        let batch: Uuid = cmd
            .batch_id
            .parse()
            .map_err(|_| invalid("batch_id", "not a batch id (UUID)"))?;
        let closed = tx
            .query_opt("select closed_at is not null from debit_batches where batch_id = $1 and line = $2 for update", &[
                &batch,
                &msg.line.as_str(),
            ])
            .await?
            .ok_or_else(|| not_found("batch_id", format!("no {} line debit batch {batch}", msg.line)))?
            .get::<_, bool>(0);
        if closed {
            return Err(conflict(
                "batch_id",
                "the results of this batch were already recorded",
            ));
        }
        // The window closes first, so the payments below are not refused by it.
        tx.execute(
            "update debit_batches set closed_at = now() where batch_id = $1",
            &[&batch],
        )
        .await?;
        let (mut debited, mut failed) = (0, 0);
        let mut outgoing = Vec::new();
        for (i, r) in cmd.results.iter().enumerate() {
            let field = format!("results[{i}].assessment_id");
            let id: Uuid = r
                .assessment_id
                .parse()
                .map_err(|_| invalid(&field, "not an assessment id (UUID)"))?;
            let item = tx
                .query_opt(
                    "select amount, person_id from debit_items where batch_id = $1 and assessment_id = $2",
                    &[&batch, &id],
                )
                .await?
                .ok_or_else(|| invalid(&field, "not an item of this batch"))?;
            let (amount, person): (Decimal, String) = (item.get(0), item.get(1));
            if r.ok {
                let mut a = payments::lock(tx, id)
                    .await?
                    .ok_or_else(|| not_found(&field, "assessment vanished"))?;
                let receipt = format!("debit:{batch}:{id}");
                let payment = payments::Payment {
                    amount,
                    paid_at: cmd.debited_at,
                    receipt_no: &receipt,
                    channel: "bank-debit",
                };
                self.refresh_deadline(tx, &mut a, cmd.debited_at).await?;
                outgoing.extend(payments::apply(tx, &self.names, &mut a, &payment, &msg.envelope).await?);
                tx.execute(
                    "update debit_items set result = 'debited' where batch_id = $1 and assessment_id = $2",
                    &[&batch, &id],
                )
                .await?;
                debited += 1;
            } else {
                let reason = r.reason.clone().unwrap_or_else(|| "not given".into());
                tx.execute(
                    "update debit_items set result = 'failed', reason = $3 where batch_id = $1 and assessment_id = $2",
                    &[&batch, &id, &reason],
                )
                .await?;
                let event = ev::DebitFailed {
                    batch_id: batch.to_string(),
                    assessment_id: id.to_string(),
                    person_id: person,
                    amount: fen(amount),
                    reason,
                    line: msg.line,
                };
                outgoing.push(self.event(msg.line, &event, msg));
                failed += 1;
            }
        }
        ok(
            &c::DebitResultsSummary {
                batch_id: batch.to_string(),
                debited,
                failed,
            },
            outgoing,
        )
    }

    async fn employer_statement(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::EmployerStatement = msg.decode()?;
        let code = CreditCode::parse(&cmd.employer_credit_code).map_err(|e| {
            reject(
                ErrorCode::InvalidCreditCode,
                "employer_credit_code",
                e.to_string(),
            )
        })?;
        let month = ym("month", &cmd.month)?;
        let a = payments::find(
            tx,
            msg.line,
            "payer_kind = 'employer' and payer_id = $2 and month = $3",
            &[&code.as_str(), &month.first_day()],
        )
        .await?
        .pop()
        .ok_or_else(|| {
            not_found(
                "employer_credit_code",
                format!("no {} assessment of {code} for {month}", msg.line),
            )
        })?;
        let id = a.id;
        let rows = tx
            .query(
                "select p.id_number, i.insurance_type, i.share, max(i.base)::text, sum(i.amount)
                 from assessment_items i join persons p using (person_id)
                 where i.assessment_id = $1 group by 1, 2, 3 having sum(i.amount) <> 0 order by 1, 2, 3",
                &[&id],
            )
            .await?;
        let lines: Vec<c::StatementLine> = rows
            .iter()
            .map(|r| c::StatementLine {
                id_number: r.get(0),
                insurance_type: r.get(1),
                share: r.get(2),
                base: r.get(3),
                amount: fen(r.get(4)),
            })
            .collect();
        // The employer's own share per type: on the sum of its employees' bases, rounded
        // once; the rounding item reconciles it with the per-person lines above.
        let shares = tx
            .query(
                "with per_person as (
                     select insurance_type, max(base) as base, sum(amount) as amount
                     from assessment_items where assessment_id = $1 and share = 'employer'
                     group by person_id, insurance_type having sum(amount) <> 0),
                 rounding as (
                     select insurance_type, sum(amount) as amount
                     from assessment_items where assessment_id = $1 and share = 'rounding'
                     group by insurance_type)
                 select p.insurance_type, sum(p.base), sum(p.amount) + coalesce(max(r.amount), 0),
                        coalesce(max(r.amount), 0)
                 from per_person p left join rounding r using (insurance_type)
                 group by p.insurance_type order by p.insurance_type",
                &[&id],
            )
            .await?;
        let employer_shares = shares
            .iter()
            .map(|r| c::EmployerShareLine {
                insurance_type: r.get(0),
                base: fen(r.get::<_, Option<Decimal>>(1).unwrap_or_default()),
                amount: fen(r.get(2)),
                rounding: fen(r.get(3)),
            })
            .collect();
        ok(
            &c::EmployerStatementResult {
                assessment: a.status(),
                lines,
                employer_shares,
            },
            vec![],
        )
    }

    async fn contribution_history(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ContributionHistory = msg.decode()?;
        let id = IdNumber::parse(&cmd.id_number)
            .map_err(|e| reject(ErrorCode::InvalidIdNumber, "id_number", e.to_string()))?;
        let person: Uuid = tx
            .query_opt(
                "select person_id from persons where id_number = $1",
                &[&id.as_str()],
            )
            .await?
            .ok_or_else(|| not_found("id_number", format!("no contribution record for {id}")))?
            .get(0);
        let rows = tx
            .query(
                "select to_char(a.month, 'YYYY-MM'), i.insurance_type, a.payer_kind, a.payer_id,
                        sum(i.amount) filter (where i.share = 'employer'),
                        sum(i.amount) filter (where i.share in ('employee', 'person')),
                        a.paid >= a.due, a.in_arrears
                 from assessment_items i join assessments a using (assessment_id)
                 where i.person_id = $1 and a.line = $2
                 group by a.month, i.insurance_type, a.payer_kind, a.payer_id, a.paid, a.due, a.in_arrears
                 order by a.month, i.insurance_type",
                &[&person, &msg.line.as_str()],
            )
            .await?;
        let months: Vec<c::ContributionMonth> = rows
            .iter()
            .map(|r| c::ContributionMonth {
                month: r.get(0),
                insurance_type: r.get(1),
                payer_kind: r.get(2),
                payer_id: r.get(3),
                employer_share: r.get::<_, Option<Decimal>>(4).map(fen),
                own_share: r.get::<_, Option<Decimal>>(5).map(fen),
                paid: r.get(6),
                in_arrears: r.get(7),
            })
            .collect();
        let carried: Vec<c::CarriedContributions> = tx
            .query(
                "select certificate_id::text, from_region, insurance_types, to_char(effective_month, 'YYYY-MM'),
                        months, pension_account_balance
                 from carried_contributions where person_id = $1 and line = $2 order by recorded_at, certificate_id",
                &[&person, &msg.line.as_str()],
            )
            .await?
            .iter()
            .map(|r| c::CarriedContributions {
                certificate_id: r.get(0),
                from_region: r.get(1),
                insurance_types: r.get(2),
                effective_month: r.get(3),
                months: r.get::<_, Option<i32>>(4).map(|m| m.max(0) as u32),
                pension_account_balance: r.get::<_, Option<Decimal>>(5).map(fen),
            })
            .collect();
        // Months paid here (each month once per type) plus what was carried in.
        let mut total_months: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
        let mut paid_here = std::collections::BTreeSet::new();
        for m in months.iter().filter(|m| m.paid) {
            paid_here.insert((m.insurance_type.clone(), m.month.clone()));
        }
        for (t, _) in paid_here {
            *total_months.entry(t).or_default() += 1;
        }
        for c in &carried {
            for t in &c.insurance_types {
                *total_months.entry(t.clone()).or_default() += c.months.unwrap_or(0);
            }
        }
        ok(
            &c::ContributionHistoryResult {
                person_id: person.to_string(),
                months,
                carried,
                total_months,
            },
            vec![],
        )
    }

    async fn list_arrears(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ListArrears = msg.decode()?;
        let month = cmd
            .month
            .as_deref()
            .map(|m| ym("month", m))
            .transpose()?
            .map(YearMonth::first_day);
        let arrears: Vec<_> = payments::find(
            tx,
            msg.line,
            "in_arrears and ($2::date is null or month = $2)",
            &[&month],
        )
        .await?
        .iter()
        .map(payments::Assessment::status)
        .collect();
        ok(&c::ListArrearsResult { arrears }, vec![])
    }
}

/// Gives the assessments `ids` the deadline `plain` (as the freeze orders held now move it:
/// `effective`), and the `contribution-assessed` events run `run_id` wrote for them and not yet
/// published the same deadline, so that what the payer is told is what is stored (a yearly
/// premium's collection period, a settle-up due with a later declaration).
async fn set_deadlines(
    tx: &Transaction<'_>,
    run_id: Uuid,
    ids: &[Uuid],
    plain: chrono::NaiveDate,
    effective: chrono::NaiveDate,
) -> Result<(), HandlerError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "with moved as (
             update assessments set plain_deadline = $3, deadline = $4, updated_at = now()
             where assessment_id = any($2)
             returning assessment_id, deadline)
         update outbox o set body = jsonb_set(o.body, '{deadline}', to_jsonb(m.deadline))
         from moved m
         where o.published_at is null and o.message_type = 'collection.contribution-assessed.v1'
           and o.body->>'run_id' = ($1::uuid)::text and o.body->>'assessment_id' = m.assessment_id::text",
        &[&run_id, &ids, &plain, &effective],
    )
    .await?;
    Ok(())
}

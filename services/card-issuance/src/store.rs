//! Storage: SQL that runs inside the consumer's transaction, so the application's change,
//! its step row, the inbox row and the outbox rows commit together.

use crate::domain::{CardState, Closed, CorrectionVia, Failure, Kind, Loss, Step};
use chrono::{DateTime, Utc};
use contracts::InsuranceType;
use contracts::card::commands::StepView;
use deadpool_postgres::{GenericClient, Transaction};
use messaging::Envelope;
use tokio_postgres::{Error, Row};
use uuid::Uuid;

pub async fn upsert_person(
    tx: &Transaction<'_>,
    id_number: &str,
    person_id: &str,
    name: Option<&str>,
    category: Option<&str>,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached(
            "insert into persons (id_number, person_id, name, category) values ($1, $2, $3, $4)
             on conflict (id_number) do update set
                 person_id = excluded.person_id,
                 name = coalesce(excluded.name, persons.name),
                 category = coalesce(excluded.category, persons.category),
                 updated_at = now()",
        )
        .await?,
        &[&id_number, &person_id, &name, &category],
    )
    .await?;
    Ok(())
}

pub async fn set_enrollment(
    tx: &Transaction<'_>,
    id_number: &str,
    t: InsuranceType,
    status: &str,
    reason: Option<&str>,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached(
            "insert into person_enrollments (id_number, insurance_type, status, reason) values ($1, $2, $3, $4)
             on conflict (id_number, insurance_type) do update set
                 status = excluded.status, reason = excluded.reason, updated_at = now()",
        )
        .await?,
        &[&id_number, &t.as_str(), &status, &reason],
    )
    .await?;
    Ok(())
}

/// A person known from enrollment: the name it gave and the insurance types now active.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: Option<String>,
    pub active: Vec<InsuranceType>,
    /// Every type ever announced, whatever its status (for the events' lines).
    pub all: Vec<InsuranceType>,
}

pub async fn person(tx: &impl GenericClient, id_number: &str) -> Result<Option<Person>, Error> {
    let Some(row) = tx
        .query_opt(
            &tx.prepare_cached("select name from persons where id_number = $1")
                .await?,
            &[&id_number],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = tx
        .query(
            &tx.prepare_cached(
                "select insurance_type, status from person_enrollments where id_number = $1 order by insurance_type",
            )
            .await?,
            &[&id_number],
        )
        .await?;
    let parse = |r: &Row| r.get::<_, String>(0).parse::<InsuranceType>().ok();
    Ok(Some(Person {
        name: row.get(0),
        active: rows
            .iter()
            .filter(|r| r.get::<_, String>(1) == "active")
            .filter_map(parse)
            .collect(),
        all: rows.iter().filter_map(parse).collect(),
    }))
}

/// One application as stored.
#[derive(Debug, Clone)]
pub struct App {
    pub application_id: Uuid,
    pub id_number: String,
    pub state: CardState,
    pub name: String,
    pub bank: String,
    pub financial_account: Option<String>,
    pub card_number: Option<String>,
    pub tracking_number: Option<String>,
    pub picked_up_by: Option<String>,
    pub attempt: i32,
    pub last_step_at: DateTime<Utc>,
}

const COLUMNS: &str = "application_id, id_number, kind, step, failure, reason, correction_via, loss, closed, \
     name, bank, financial_account, card_number, branch, tracking_number, picked_up_by, attempt, last_step_at";

fn app(r: &Row) -> App {
    let name = |c: &str| r.get::<_, Option<String>>(c);
    App {
        application_id: r.get("application_id"),
        id_number: r.get("id_number"),
        state: CardState {
            kind: Kind::parse(r.get("kind")).unwrap_or(Kind::First),
            step: Step::parse(r.get("step")).unwrap_or(Step::InfoCollected),
            failure: name("failure").as_deref().and_then(Failure::parse),
            reason: name("reason"),
            correction_via: name("correction_via").as_deref().and_then(CorrectionVia::parse),
            loss: name("loss").as_deref().and_then(Loss::parse),
            closed: name("closed").as_deref().and_then(Closed::parse),
            branch: name("branch"),
        },
        name: r.get("name"),
        bank: r.get("bank"),
        financial_account: name("financial_account"),
        card_number: name("card_number"),
        tracking_number: name("tracking_number"),
        picked_up_by: name("picked_up_by"),
        attempt: r.get("attempt"),
        last_step_at: r.get("last_step_at"),
    }
}

/// The person's open application, locked: the steps of one card are serialised.
pub async fn open_app(tx: &Transaction<'_>, id_number: &str) -> Result<Option<App>, Error> {
    let sql =
        format!("select {COLUMNS} from applications where id_number = $1 and closed is null for update");
    Ok(tx
        .query_opt(&tx.prepare_cached(&sql).await?, &[&id_number])
        .await?
        .as_ref()
        .map(app))
}

/// The person's latest application, open or not (what the status query shows).
pub async fn latest_app(tx: &impl GenericClient, id_number: &str) -> Result<Option<App>, Error> {
    let sql = format!(
        "select {COLUMNS} from applications where id_number = $1
         order by (closed is null) desc, created_at desc, application_id desc limit 1"
    );
    Ok(tx
        .query_opt(&tx.prepare_cached(&sql).await?, &[&id_number])
        .await?
        .as_ref()
        .map(app))
}

/// Inserts a new application or writes back a changed one.
pub async fn save(tx: &Transaction<'_>, a: &App) -> Result<(), Error> {
    let s = &a.state;
    tx.execute(
        &tx.prepare_cached(
            "insert into applications (application_id, id_number, kind, step, failure, reason, correction_via,
                 loss, closed, name, bank, financial_account, card_number, branch, tracking_number,
                 picked_up_by, attempt, last_step_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             on conflict (application_id) do update set
                 step = excluded.step, failure = excluded.failure, reason = excluded.reason,
                 correction_via = excluded.correction_via, loss = excluded.loss, closed = excluded.closed,
                 name = excluded.name, financial_account = excluded.financial_account,
                 card_number = excluded.card_number, branch = excluded.branch,
                 tracking_number = excluded.tracking_number, picked_up_by = excluded.picked_up_by,
                 attempt = excluded.attempt, last_step_at = excluded.last_step_at, updated_at = now()",
        )
        .await?,
        &[
            &a.application_id,
            &a.id_number,
            &s.kind.as_str(),
            &s.step.as_str(),
            &s.failure.map(Failure::as_str),
            &s.reason,
            &s.correction_via.map(CorrectionVia::as_str),
            &s.loss.map(Loss::as_str),
            &s.closed.map(Closed::as_str),
            &a.name,
            &a.bank,
            &a.financial_account,
            &a.card_number,
            &s.branch,
            &a.tracking_number,
            &a.picked_up_by,
            &a.attempt,
            &a.last_step_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn add_step(
    tx: &Transaction<'_>,
    application_id: Uuid,
    step: &str,
    note: Option<&str>,
    cause: &Envelope,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached(
            "insert into steps (application_id, step, note, channel, operator, message_id, at)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?,
        &[
            &application_id,
            &step,
            &note,
            &cause.channel.map(|c| c.as_str()),
            &cause.operator,
            &cause.message_id,
            &at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn steps(tx: &impl GenericClient, application_id: Uuid) -> Result<Vec<StepView>, Error> {
    let rows = tx
        .query(
            &tx.prepare_cached("select step, note, at from steps where application_id = $1 order by seq")
                .await?,
            &[&application_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StepView {
            step: r.get(0),
            note: r.get(1),
            at: r
                .get::<_, DateTime<Utc>>(2)
                .with_timezone(&contracts::freeze::cst()),
        })
        .collect())
}

//! SQL of the notification schema, inside the caller's transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// A message decided: who, on which line, what text, from which source, not before when.
#[derive(Debug, Clone)]
pub struct Queued {
    pub recipient: String,
    pub line: String,
    pub category: String,
    pub template: String,
    pub version: i32,
    pub text: String,
    pub source: String,
    pub not_before: DateTime<Utc>,
}

/// Creates or updates a contact. The phone is taken only from an event at least as new as
/// the one that set it (`version`, a UUIDv7 message id); lines only grow.
pub async fn upsert_contact(
    db: &impl GenericClient,
    recipient: &str,
    person_id: Option<&str>,
    name: Option<&str>,
    phone: Option<&str>,
    line: Option<&str>,
    version: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "insert into contacts (recipient, person_id, name, phone, lines, contact_version)
         values ($1, $2, $3, $4, case when $5::text is null then '{}'::text[] else array[$5::text] end,
                 case when $4::text is null then null else $6::uuid end)
         on conflict (recipient) do update set
           person_id = coalesce(excluded.person_id, contacts.person_id),
           name = coalesce(excluded.name, contacts.name),
           phone = case when excluded.phone is not null
                         and (contacts.contact_version is null or contacts.contact_version <= $6::uuid)
                        then excluded.phone else contacts.phone end,
           contact_version = case when excluded.phone is not null
                         and (contacts.contact_version is null or contacts.contact_version <= $6::uuid)
                        then $6::uuid else contacts.contact_version end,
           lines = case when $5::text is null or $5::text = any(contacts.lines) then contacts.lines
                        else contacts.lines || $5::text end",
        &[&recipient, &person_id, &name, &phone, &line, &version],
    )
    .await?;
    Ok(())
}

/// The name a contact is known by (an employer's, for the staff it enrolls).
pub async fn name(db: &impl GenericClient, recipient: &str) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(db
        .query_opt("select name from contacts where recipient = $1", &[&recipient])
        .await?
        .and_then(|r| r.get(0)))
}

/// The recipient whose enrollment id is `person_id` (payers and settlements name persons so).
pub async fn person_by_id(
    db: &impl GenericClient,
    person_id: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "select recipient from contacts where person_id = $1 and recipient like 'person:%' limit 1",
            &[&person_id],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Queues one message; `false` when it was already decided (a redelivered event) or the
/// recipient has no phone. An opted-out reminder is recorded as `opted-out`, never sent.
pub async fn queue(db: &impl GenericClient, q: &Queued) -> Result<bool, tokio_postgres::Error> {
    // One statement: the phone, the opt-out and the insert; the first count tells a recipient
    // without a phone from a message already decided.
    let row = db
        .query_one(
            "with c as (
                 select phone,
                        case when $5 = 'reminder' and exists (
                                 select 1 from opt_outs o
                                 where 'person:' || o.id_number = contacts.recipient and o.category = 'reminder')
                             then 'opted-out' else 'queued' end as state
                 from contacts where recipient = $2 and phone is not null),
             ins as (
                 insert into notifications (notification_id, recipient, phone, line, category, template,
                     template_version, text, source, state, not_before)
                 select $1, $2, c.phone, $3, $5, $6, $7, $8, $9, c.state, $4 from c
                 on conflict (source, recipient, template) do nothing
                 returning state)
             select (select count(*) from c), (select state from ins)",
            &[
                &Uuid::now_v7(),
                &q.recipient,
                &q.line,
                &q.not_before,
                &q.category,
                &q.template,
                &q.version,
                &q.text,
                &q.source,
            ],
        )
        .await?;
    let (reachable, state): (i64, Option<String>) = (row.get(0), row.get(1));
    if reachable == 0 {
        tracing::info!(recipient = %q.recipient, template = %q.template, "no phone for the recipient; nothing sent");
        metrics::counter!("notification_no_contact_total", "template" => q.template.clone()).increment(1);
    }
    if let Some(state) = &state {
        metrics::counter!("notification_queued_total", "template" => q.template.clone(), "state" => state.clone())
            .increment(1);
    }
    Ok(state.is_some())
}

/// Reminders for a source that no longer apply (the contribution was paid).
pub async fn cancel_source(db: &impl GenericClient, source: &str) -> Result<u64, tokio_postgres::Error> {
    db.execute(
        "update notifications set state = 'cancelled', reason = 'no longer due'
         where source = $1 and state = 'queued'",
        &[&source],
    )
    .await
}

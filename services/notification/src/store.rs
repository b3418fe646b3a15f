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

#[derive(Debug, Clone)]
pub struct Contact {
    pub recipient: String,
    pub person_id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
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

pub async fn contact(
    db: &impl GenericClient,
    recipient: &str,
) -> Result<Option<Contact>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "select recipient, person_id, name, phone from contacts where recipient = $1",
            &[&recipient],
        )
        .await?;
    Ok(row.map(|r| Contact {
        recipient: r.get(0),
        person_id: r.get(1),
        name: r.get(2),
        phone: r.get(3),
    }))
}

/// The person whose enrollment id is `person_id` (payers and settlements name persons so).
pub async fn by_person_id(
    db: &impl GenericClient,
    person_id: &str,
) -> Result<Option<Contact>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "select recipient from contacts where person_id = $1 and recipient like 'person:%' limit 1",
            &[&person_id],
        )
        .await?;
    match row {
        Some(r) => contact(db, r.get::<_, String>(0).as_str()).await,
        None => Ok(None),
    }
}

pub async fn opted_out(
    db: &impl GenericClient,
    recipient: &str,
    category: &str,
) -> Result<bool, tokio_postgres::Error> {
    let Some(id_number) = recipient.strip_prefix("person:") else {
        return Ok(false);
    };
    Ok(db
        .query_opt(
            "select 1 from opt_outs where id_number = $1 and category = $2",
            &[&id_number, &category],
        )
        .await?
        .is_some())
}

/// Queues one message; `false` when it was already decided (a redelivered event) or the
/// recipient has no phone. An opted-out reminder is recorded as `opted-out`, never sent.
pub async fn queue(db: &impl GenericClient, q: &Queued) -> Result<bool, tokio_postgres::Error> {
    let Some(phone) = contact(db, &q.recipient).await?.and_then(|c| c.phone) else {
        tracing::info!(recipient = %q.recipient, template = %q.template, "no phone for the recipient; nothing sent");
        metrics::counter!("notification_no_contact_total", "template" => q.template.clone()).increment(1);
        return Ok(false);
    };
    let state = if q.category == "reminder" && opted_out(db, &q.recipient, &q.category).await? {
        "opted-out"
    } else {
        "queued"
    };
    let n = db
        .execute(
            "insert into notifications (notification_id, recipient, phone, line, category, template,
                 template_version, text, source, state, not_before)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             on conflict (source, recipient, template) do nothing",
            &[
                &Uuid::now_v7(),
                &q.recipient,
                &phone,
                &q.line,
                &q.category,
                &q.template,
                &q.version,
                &q.text,
                &q.source,
                &state,
                &q.not_before,
            ],
        )
        .await?;
    if n > 0 {
        metrics::counter!("notification_queued_total", "template" => q.template.clone(), "state" => state)
            .increment(1);
    }
    Ok(n > 0)
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

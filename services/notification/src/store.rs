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

/// Creates or updates a contact (and locks its row, so that the contact's events are
/// applied one after the other). The phone is taken only from an event at least as new as
/// the one that set it (`version`, a UUIDv7 message id). The lines are [`hold_types`]'.
pub async fn upsert_contact(
    db: &impl GenericClient,
    recipient: &str,
    person_id: Option<&str>,
    name: Option<&str>,
    phone: Option<&str>,
    version: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "insert into contacts (recipient, person_id, name, phone, contact_version)
         values ($1, $2, $3, $4, case when $4::text is null then null else $5::uuid end)
         on conflict (recipient) do update set
           person_id = coalesce(excluded.person_id, contacts.person_id),
           name = coalesce(excluded.name, contacts.name),
           phone = case when excluded.phone is not null
                         and (contacts.contact_version is null or contacts.contact_version <= $5::uuid)
                        then excluded.phone else contacts.phone end,
           contact_version = case when excluded.phone is not null
                         and (contacts.contact_version is null or contacts.contact_version <= $5::uuid)
                        then $5::uuid else contacts.contact_version end",
        &[&recipient, &person_id, &name, &phone, &version],
    )
    .await?;
    Ok(())
}

/// The type a contact holds on a line that has no insurance types (an employer's
/// registration), or whose types are not known (a contact from before types were kept).
pub const ON_LINE: &str = "*";

/// Records that `recipient` holds (`held`) or no longer holds each of `types` on `line`, as
/// of the event `version` (a UUIDv7 message id): a type last set by a newer event is left as
/// it is, so events applied out of order end where the newest one says. Then `line` is among
/// the contact's lines (the announcements') while at least one type is held on it. Several
/// types can be held on one line (pension and unemployment on the social line): ending one
/// keeps the line, ending the last drops it, and enrolling again brings it back.
pub async fn hold_types(
    db: &impl GenericClient,
    recipient: &str,
    line: &str,
    types: &[&str],
    held: bool,
    version: Uuid,
) -> Result<(), tokio_postgres::Error> {
    // The contact's events one at a time: the line is judged from every committed type.
    db.execute(
        "select 1 from contacts where recipient = $1 for update",
        &[&recipient],
    )
    .await?;
    db.execute(
        "insert into contact_types (recipient, line, insurance_type, held, version)
         select $1, $2, t, $4, $5 from unnest($3::text[]) t
         on conflict (recipient, line, insurance_type) do update
             set held = excluded.held, version = excluded.version
             where contact_types.version is null or contact_types.version <= excluded.version",
        &[&recipient, &line, &types, &held, &version],
    )
    .await?;
    db.execute(
        "update contacts c set lines = case
             when exists (select 1 from contact_types t
                          where t.recipient = c.recipient and t.line = $2 and t.held)
             then case when $2 = any(c.lines) then c.lines else c.lines || $2::text end
             else array_remove(c.lines, $2::text) end
         where c.recipient = $1",
        &[&recipient, &line],
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

/// The lines a contact is enrolled on now (none when unknown).
pub async fn lines(db: &impl GenericClient, recipient: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(db
        .query_opt("select lines from contacts where recipient = $1", &[&recipient])
        .await?
        .map(|r| r.get(0))
        .unwrap_or_default())
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
        tracing::info!(recipient = %masked_recipient(&q.recipient), template = %q.template, "no phone for the recipient; nothing sent");
        metrics::counter!("notification_no_contact_total", "template" => q.template.clone()).increment(1);
    }
    if let Some(state) = &state {
        metrics::counter!("notification_queued_total", "template" => q.template.clone(), "state" => state.clone())
            .increment(1);
    }
    Ok(state.is_some())
}

/// Queues `rendered` (with `{months}` and `{amount}` still in it) for every item of a
/// benefit batch that was not failed, each with its months and amount, in one statement; the
/// source is the item (`payment:<batch>:<item>`), so a redelivered result queues nothing
/// twice. The number queued.
pub async fn queue_paid_items(
    db: &impl GenericClient,
    batch_id: &str,
    rendered: &crate::templates::Rendered,
    not_before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    let row = db
        .query_one(
            "with items as (
                 select i.batch_id, i.item_id, i.recipient, i.months, i.amount, c.phone
                 from benefit_items i left join contacts c on c.recipient = i.recipient
                 where i.batch_id = $1 and not i.failed),
             ins as (
                 insert into notifications (notification_id, recipient, phone, line, category, template,
                     template_version, text, source, not_before)
                 select uuid_v7(), i.recipient, i.phone, 'social', $2, $3, $4,
                        replace(replace($5, '{months}', i.months), '{amount}', i.amount),
                        'payment:' || i.batch_id || ':' || i.item_id, $6
                 from items i where i.phone is not null
                 on conflict (source, recipient, template) do nothing
                 returning 1)
             select (select count(*) from items where phone is null), (select count(*) from ins)",
            &[
                &batch_id,
                &rendered.category,
                &rendered.template,
                &rendered.version,
                &rendered.text,
                &not_before,
            ],
        )
        .await?;
    let (unreachable, queued): (i64, i64) = (row.get(0), row.get(1));
    if unreachable > 0 {
        metrics::counter!("notification_no_contact_total", "template" => rendered.template.clone())
            .increment(unreachable as u64);
    }
    metrics::counter!("notification_queued_total", "template" => rendered.template.clone(), "state" => "queued")
        .increment(queued as u64);
    Ok(queued as u64)
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

/// A recipient key (`person:<ID number>`, `employer:<credit code>`) as logs may show it: the
/// number masked as the services mask ID numbers (first 4 and last 4 kept).
pub fn masked_recipient(recipient: &str) -> String {
    match recipient.split_once(':') {
        Some((kind, number)) => format!("{kind}:{}", contracts::ids::mask_middle(number, 4, 4)),
        None => contracts::ids::mask_middle(recipient, 4, 4),
    }
}

#[cfg(test)]
mod masking_tests {
    #[test]
    fn a_recipient_is_logged_masked() {
        assert_eq!(
            super::masked_recipient("person:420102196001118507"),
            "person:4201**********8507"
        );
        assert_eq!(
            super::masked_recipient("employer:914201000000103735"),
            "employer:9142**********3735"
        );
    }
}

//! Storage: SQL that runs inside the consumer's transaction, so the business change, the
//! history version, the inbox row and the outbox rows commit together.

use contracts::InsuranceType;
use contracts::enrollment::commands::{EnrollmentView, HistoryVersion};
use deadpool_postgres::{GenericClient, Transaction};
use messaging::Envelope;
use tokio_postgres::Error;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Person {
    pub person_id: Uuid,
    pub id_number: String,
    pub name: String,
    pub phone: String,
    pub category: String,
    pub bank_account: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Enrollment {
    pub insurance_type: InsuranceType,
    pub status: String,
    pub effective_month: String,
    pub employer_credit_code: Option<String>,
}

impl From<&Enrollment> for EnrollmentView {
    fn from(e: &Enrollment) -> Self {
        EnrollmentView {
            insurance_type: e.insurance_type,
            status: e.status.clone(),
            effective_month: e.effective_month.clone(),
            employer_credit_code: e.employer_credit_code.clone(),
        }
    }
}

fn person(row: &tokio_postgres::Row) -> Person {
    Person {
        person_id: row.get("person_id"),
        id_number: row.get("id_number"),
        name: row.get("name"),
        phone: row.get("phone"),
        category: row.get("category"),
        bank_account: row.get("bank_account"),
    }
}

/// Finds a person and locks the row: changes to one person are serialised.
pub async fn lock_person(tx: &Transaction<'_>, id_number: &str) -> Result<Option<Person>, Error> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "select person_id, id_number, name, phone, category, bank_account from persons
             where id_number = $1 for update",
            )
            .await?,
            &[&id_number],
        )
        .await?;
    Ok(row.as_ref().map(person))
}

/// Creates the person if unknown; returns the (locked) person and whether it is new.
pub async fn upsert_person(
    tx: &Transaction<'_>,
    id_number: &str,
    name: &str,
    phone: &str,
    category: &str,
) -> Result<(Person, bool), Error> {
    let inserted = tx
        .execute(
            &tx.prepare_cached("insert into persons (person_id, id_number, name, phone, category) values ($1, $2, $3, $4, $5)
             on conflict (id_number) do nothing").await?,
            &[&Uuid::now_v7(), &id_number, &name, &phone, &category],
        )
        .await?;
    let p = lock_person(tx, id_number)
        .await?
        .expect("the person exists after the upsert");
    Ok((p, inserted == 1))
}

pub async fn set_category(tx: &Transaction<'_>, person_id: Uuid, category: &str) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached(
            "update persons set category = $2, updated_at = now() where person_id = $1 and category <> $2",
        )
        .await?,
        &[&person_id, &category],
    )
    .await?;
    Ok(())
}

pub async fn update_contact(
    tx: &Transaction<'_>,
    person_id: Uuid,
    name: &str,
    phone: &str,
    bank_account: Option<&str>,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached("update persons set name = $2, phone = $3, bank_account = $4, updated_at = now() where person_id = $1").await?,
        &[&person_id, &name, &phone, &bank_account],
    )
    .await?;
    Ok(())
}

pub async fn enrollments(tx: &impl GenericClient, person_id: Uuid) -> Result<Vec<Enrollment>, Error> {
    let rows = tx
        .query(
            &tx.prepare_cached(
                "select insurance_type, status, effective_month, employer_credit_code from enrollments
             where person_id = $1 order by insurance_type",
            )
            .await?,
            &[&person_id],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Enrollment {
                insurance_type: r.get::<_, String>(0).parse().ok()?,
                status: r.get(1),
                effective_month: r.get(2),
                employer_credit_code: r.get(3),
            })
        })
        .collect())
}

/// Sets one enrollment's status (creating the row if needed).
pub async fn set_enrollment(
    tx: &Transaction<'_>,
    person_id: Uuid,
    t: InsuranceType,
    status: &str,
    month: &str,
    employer: Option<&str>,
    reason: Option<&str>,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached("insert into enrollments (person_id, insurance_type, line, status, effective_month, employer_credit_code, status_reason)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (person_id, insurance_type) do update set
             status = excluded.status, effective_month = excluded.effective_month,
             employer_credit_code = excluded.employer_credit_code, status_reason = excluded.status_reason,
             updated_at = now()").await?,
        &[&person_id, &t.as_str(), &t.line().as_str(), &status, &month, &employer, &reason],
    )
    .await?;
    Ok(())
}

/// Changes only the status of an existing enrollment, keeping its employer.
pub async fn change_status(
    tx: &Transaction<'_>,
    person_id: Uuid,
    t: InsuranceType,
    status: &str,
    month: &str,
    reason: &str,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached(
            "update enrollments set status = $3, effective_month = $4, status_reason = $5, updated_at = now()
         where person_id = $1 and insurance_type = $2",
        )
        .await?,
        &[&person_id, &t.as_str(), &status, &month, &reason],
    )
    .await?;
    Ok(())
}

/// Appends the next version of a person's record: a snapshot of the person and all their
/// enrollments after the change, with who, when, through which channel and why.
pub async fn record_person_version(
    tx: &Transaction<'_>,
    person_id: Uuid,
    change: &str,
    reason: Option<&str>,
    cause: &Envelope,
) -> Result<(), Error> {
    let snapshot = "select jsonb_build_object(
            'id_number', p.id_number, 'name', p.name, 'phone', p.phone, 'category', p.category,
            'bank_account', p.bank_account,
            'enrollments', coalesce((select jsonb_agg(jsonb_build_object(
                'insurance_type', e.insurance_type, 'status', e.status,
                'effective_month', e.effective_month, 'employer_credit_code', e.employer_credit_code,
                'status_reason', e.status_reason) order by e.insurance_type)
              from enrollments e where e.person_id = p.person_id), '[]'::jsonb))
        from persons p where p.person_id = $1";
    record_version(tx, "person", person_id, change, reason, cause, snapshot).await
}

pub async fn record_employer_version(
    tx: &Transaction<'_>,
    employer_id: Uuid,
    change: &str,
    reason: Option<&str>,
    cause: &Envelope,
) -> Result<(), Error> {
    let snapshot = "select jsonb_build_object(
            'credit_code', e.credit_code, 'name', e.name, 'contact_name', e.contact_name,
            'contact_phone', e.contact_phone,
            'lines', (select jsonb_agg(l.line order by l.line) from employer_lines l where l.credit_code = e.credit_code))
        from employers e where e.employer_id = $1";
    record_version(tx, "employer", employer_id, change, reason, cause, snapshot).await
}

async fn record_version(
    tx: &Transaction<'_>,
    entity: &str,
    id: Uuid,
    change: &str,
    reason: Option<&str>,
    cause: &Envelope,
    snapshot_sql: &str,
) -> Result<(), Error> {
    let sql = format!(
        "insert into history (entity, entity_id, version, change, snapshot, reason, channel, operator, message_id)
         select $1, $2,
                coalesce((select max(version) from history where entity = $1 and entity_id = $2), 0) + 1,
                $3, ({snapshot}), $4, $5, $6, $7",
        snapshot = snapshot_sql.replace("$1", "$2")
    );
    let channel = cause.channel.map(|c| c.as_str());
    tx.execute(
        &sql,
        &[
            &entity,
            &id,
            &change,
            &reason,
            &channel,
            &cause.operator,
            &cause.message_id,
        ],
    )
    .await?;
    Ok(())
}

pub async fn history(tx: &impl GenericClient, entity: &str, id: Uuid) -> Result<Vec<HistoryVersion>, Error> {
    let rows = tx
        .query(
            &tx.prepare_cached(
                "select version, change, snapshot, reason, channel, operator, message_id, changed_at
             from history where entity = $1 and entity_id = $2 order by version",
            )
            .await?,
            &[&entity, &id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| HistoryVersion {
            version: r.get(0),
            change: r.get(1),
            snapshot: r.get(2),
            reason: r.get(3),
            channel: r.get(4),
            operator: r.get(5),
            message_id: r.get::<_, Uuid>(6).to_string(),
            changed_at: r.get::<_, chrono::DateTime<chrono::Utc>>(7).fixed_offset(),
        })
        .collect())
}

/// An employer's id if it is registered on `line`.
pub async fn employer_on_line(
    tx: &Transaction<'_>,
    credit_code: &str,
    line: &str,
) -> Result<Option<Uuid>, Error> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "select e.employer_id from employers e join employer_lines l using (credit_code)
             where e.credit_code = $1 and l.line = $2",
            )
            .await?,
            &[&credit_code, &line],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

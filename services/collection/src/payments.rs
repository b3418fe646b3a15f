//! Applying a payment to an assessment: shared by tax-authority reports and bank debit.

use contracts::Line;
use contracts::collection::commands::AssessmentStatus;
use contracts::collection::events as ev;
use deadpool_postgres::Transaction;
use messaging::{Envelope, HandlerError, Names, Outgoing};
use rust_decimal::Decimal;
use uuid::Uuid;

/// An amount as the wire shows it: yuan with two decimals, by the one rounding rule of
/// `Money` (half up to the fen).
pub fn fen(d: Decimal) -> String {
    crate::domain::money::Money::round_fen(d).to_string()
}

pub struct Assessment {
    pub id: Uuid,
    pub line: Line,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: chrono::NaiveDate,
    pub due: Decimal,
    pub paid: Decimal,
    pub deadline: chrono::NaiveDate,
    pub in_arrears: bool,
    /// The deadline before freeze orders moved it.
    pub plain_deadline: chrono::NaiveDate,
}

impl Assessment {
    pub fn status(&self) -> AssessmentStatus {
        let state = if self.paid.is_zero() && !self.due.is_zero() {
            "open"
        } else if self.paid < self.due {
            "partially-paid"
        } else if self.paid == self.due {
            "settled"
        } else {
            "overpaid"
        };
        AssessmentStatus {
            assessment_id: self.id.to_string(),
            payer_kind: self.payer_kind.clone(),
            payer_id: self.payer_id.clone(),
            month: self.month.format("%Y-%m").to_string(),
            due: fen(self.due),
            paid: fen(self.paid),
            outstanding: fen((self.due - self.paid).max(Decimal::ZERO)),
            status: state.to_owned(),
            deadline: self.deadline,
            in_arrears: self.in_arrears,
        }
    }
}

const COLUMNS: &str =
    "assessment_id, line, payer_kind, payer_id, month, due, paid, deadline, in_arrears, plain_deadline";

fn from_row(r: &tokio_postgres::Row) -> Assessment {
    Assessment {
        id: r.get(0),
        line: r.get::<_, String>(1).parse().unwrap_or(Line::Medical),
        payer_kind: r.get(2),
        payer_id: r.get(3),
        month: r.get(4),
        due: r.get(5),
        paid: r.get(6),
        deadline: r.get(7),
        in_arrears: r.get(8),
        plain_deadline: r.get(9),
    }
}

/// Loads an assessment and locks it for a change (payments are serialised per assessment).
pub async fn lock(tx: &Transaction<'_>, id: Uuid) -> Result<Option<Assessment>, HandlerError> {
    let sql = format!("select {COLUMNS} from assessments where assessment_id = $1 for update");
    Ok(tx.query_opt(&sql, &[&id]).await?.as_ref().map(from_row))
}

/// Assessments of `line` matching `filter` (a SQL condition on `$2..`), for reading only.
pub async fn find(
    tx: &Transaction<'_>,
    line: Line,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Assessment>, HandlerError> {
    let sql = format!(
        "select {COLUMNS} from assessments where line = $1 and ({filter})
         order by month, payer_kind, payer_id limit 1000"
    );
    let line = line.as_str();
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&line];
    all.extend_from_slice(params);
    Ok(tx.query(&sql, &all).await?.iter().map(from_row).collect())
}

pub async fn persons_of(tx: &Transaction<'_>, id: Uuid) -> Result<Vec<String>, HandlerError> {
    let rows = tx
        .query(
            "select distinct person_id::text from assessment_items
             where assessment_id = $1 and share <> 'rounding' order by 1",
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The settled month per person, insurance type and share, for `contribution-settled`.
pub async fn settled_items(tx: &Transaction<'_>, id: Uuid) -> Result<Vec<ev::SettledItem>, HandlerError> {
    let rows = tx
        .query(
            "select person_id::text, insurance_type, share, sum(amount) from assessment_items
             where assessment_id = $1 and share <> 'rounding' group by 1, 2, 3 order by 1, 2, 3",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(ev::SettledItem {
                person_id: r.get(0),
                insurance_type: r.get::<_, String>(1).parse().ok()?,
                share: r.get(2),
                amount: fen(r.get(3)),
            })
        })
        .collect())
}

fn event<E: ev::CollectionEvent>(names: &Names, line: Line, e: &E, cause: &Envelope) -> Outgoing {
    let body = serde_json::to_value(e).expect("events serialise");
    Outgoing::event(
        names,
        line,
        contracts::collection::SERVICE,
        E::NAME,
        E::VERSION,
        body,
        Some(cause),
    )
}

/// A payment as reported: by the tax authority (`tax`) or the bank (`bank-debit`).
pub struct Payment<'a> {
    pub amount: Decimal,
    pub paid_at: chrono::DateTime<chrono::FixedOffset>,
    /// The payment's own idempotency key.
    pub receipt_no: &'a str,
    pub channel: &'a str,
}

/// Records `payment` against the (locked) assessment `a` and returns the events it causes:
/// always `payment-recorded`; `contribution-settled` when the month becomes fully paid;
/// `overpayment-detected` for what exceeds the amount due; `arrears-cleared` when a
/// back-payment settles a month in arrears.
pub async fn apply(
    tx: &Transaction<'_>,
    names: &Names,
    a: &mut Assessment,
    payment: &Payment<'_>,
    cause: &Envelope,
) -> Result<Vec<Outgoing>, HandlerError> {
    let Payment {
        amount,
        paid_at,
        receipt_no,
        channel,
    } = *payment;
    tx.execute(
        "insert into payments (receipt_no, assessment_id, amount, paid_at, channel, message_id)
         values ($1, $2, $3, $4, $5, $6)",
        &[&receipt_no, &a.id, &amount, &paid_at, &channel, &cause.message_id],
    )
    .await?;
    let before = a.paid;
    a.paid += amount;
    let settles = before < a.due && a.paid >= a.due;
    let clears = a.in_arrears && a.paid >= a.due;
    if clears {
        a.in_arrears = false;
    }
    tx.execute(
        "update assessments set paid = $2, in_arrears = $3, updated_at = now() where assessment_id = $1",
        &[&a.id, &a.paid, &a.in_arrears],
    )
    .await?;
    // Lateness is judged by when the payment was made, in China Standard Time, not by when
    // it reached the fund or was reported.
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    let on_time = paid_at.with_timezone(&cst).date_naive() <= a.deadline;
    let paid_on_time = if clears {
        let on_time_total: Decimal = tx
            .query_one(
                "select coalesce(sum(amount), 0) from payments
                 where assessment_id = $1 and (paid_at at time zone 'Asia/Shanghai')::date <= $2",
                &[&a.id, &a.deadline],
            )
            .await?
            .get(0);
        on_time_total >= a.due
    } else {
        false
    };
    let month = a.month.format("%Y-%m").to_string();
    let mut out = vec![event(
        names,
        a.line,
        &ev::PaymentRecorded {
            assessment_id: a.id.to_string(),
            payer_kind: a.payer_kind.clone(),
            payer_id: a.payer_id.clone(),
            month: month.clone(),
            amount: fen(amount),
            paid_at,
            tax_receipt_no: receipt_no.to_owned(),
            channel: channel.to_owned(),
            paid_total: fen(a.paid),
            outstanding: fen((a.due - a.paid).max(Decimal::ZERO)),
            line: a.line,
            on_time: Some(on_time),
        },
        cause,
    )];
    if settles {
        out.push(event(
            names,
            a.line,
            &ev::ContributionSettled {
                assessment_id: a.id.to_string(),
                payer_kind: a.payer_kind.clone(),
                payer_id: a.payer_id.clone(),
                month: month.clone(),
                total: fen(a.due),
                settled_at: paid_at,
                line: a.line,
                items: settled_items(tx, a.id).await?,
            },
            cause,
        ));
    }
    if a.paid > a.due {
        let excess = a.paid - a.due.max(before);
        out.push(event(
            names,
            a.line,
            &ev::OverpaymentDetected {
                assessment_id: a.id.to_string(),
                payer_kind: a.payer_kind.clone(),
                payer_id: a.payer_id.clone(),
                month: month.clone(),
                excess: fen(excess),
                tax_receipt_no: receipt_no.to_owned(),
                line: a.line,
            },
            cause,
        ));
    }
    if clears {
        out.push(event(
            names,
            a.line,
            &ev::ArrearsCleared {
                assessment_id: a.id.to_string(),
                payer_kind: a.payer_kind.clone(),
                payer_id: a.payer_id.clone(),
                month,
                persons: persons_of(tx, a.id).await?,
                cleared_at: paid_at,
                line: a.line,
                paid_on_time,
            },
            cause,
        ));
    }
    Ok(out)
}

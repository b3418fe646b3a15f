//! The freeze tables of a service's schema: orders, the started/ended claims, the backlog.

use chrono::{DateTime, Utc};
use contracts::freeze::{FreezeOrder, HeldOrder, OrderState};
use contracts::{Line, Reply};
use deadpool_postgres::GenericClient;
use std::collections::BTreeMap;
use uuid::Uuid;

/// An order as stored, with what operators did to it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    pub order: FreezeOrder,
    pub lifted_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl StoredOrder {
    /// The order as it applies: a lift ends it at the lift; a cancelled order applies never.
    pub fn effective(&self) -> Option<FreezeOrder> {
        if self.cancelled_at.is_some() {
            return None;
        }
        let mut o = self.order.clone();
        if let Some(l) = self.lifted_at {
            let lifted = l.with_timezone(&contracts::freeze::cst());
            o.ends_at = Some(match o.ends_at {
                Some(e) if e < lifted => e,
                _ => lifted.max(o.starts_at),
            });
        }
        Some(o)
    }

    pub fn state(&self, now: DateTime<Utc>) -> OrderState {
        if self.cancelled_at.is_some() {
            return OrderState::Cancelled;
        }
        let eff = self.effective().expect("not cancelled");
        if eff.in_force(now) {
            OrderState::InForce
        } else if eff.starts_at > now {
            OrderState::Scheduled
        } else if self.lifted_at.is_some() {
            OrderState::Lifted
        } else {
            OrderState::Ended
        }
    }

    pub fn held(&self, now: DateTime<Utc>) -> HeldOrder {
        HeldOrder {
            order: self.order.clone(),
            state: self.state(now),
            lifted_at: self.lifted_at.map(|t| t.with_timezone(&contracts::freeze::cst())),
        }
    }
}

pub async fn load(client: &impl GenericClient) -> Result<Vec<StoredOrder>, tokio_postgres::Error> {
    let rows = client
        .query(
            "select body, lifted_at, cancelled_at from freeze_orders order by (body->>'starts_at')::timestamptz, id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let body: serde_json::Value = r.get(0);
            match serde_json::from_value::<FreezeOrder>(body) {
                Ok(order) => Some(StoredOrder {
                    order,
                    lifted_at: r.get(1),
                    cancelled_at: r.get(2),
                }),
                Err(e) => {
                    tracing::error!(error = %e, "a stored freeze order does not decode; ignoring it");
                    None
                }
            }
        })
        .collect())
}

/// What storing an order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    /// Same id and body: nothing changed.
    Unchanged,
    /// Same id, new body (a re-planned order).
    Replaced,
}

impl Stored {
    pub fn as_str(self) -> &'static str {
        match self {
            Stored::New => "new",
            Stored::Unchanged => "unchanged",
            Stored::Replaced => "replaced",
        }
    }
}

pub async fn upsert(
    client: &impl GenericClient,
    order: &FreezeOrder,
) -> Result<Stored, tokio_postgres::Error> {
    let body = serde_json::to_value(order).expect("an order serialises");
    let row = client
        .query_one(
            "with old as (select body from freeze_orders where id = $1),
                  up as (
                    insert into freeze_orders (id, body) values ($1, $2)
                    on conflict (id) do update set body = excluded.body, updated_at = now()
                      where freeze_orders.body <> excluded.body
                    returning 1)
             select (select body from old) is null, exists (select 1 from up)",
            &[&order.id, &body],
        )
        .await?;
    let (was_new, wrote): (bool, bool) = (row.get(0), row.get(1));
    Ok(match (was_new, wrote) {
        (true, _) => Stored::New,
        (false, true) => Stored::Replaced,
        (false, false) => Stored::Unchanged,
    })
}

/// Lifts `id` at `at` (the service clock); `false` when there is no such order.
pub async fn lift(
    client: &impl GenericClient,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    stamp(client, Stamp::Lifted, id, at).await
}

pub async fn extend(
    client: &impl GenericClient,
    id: &str,
    until: DateTime<chrono::FixedOffset>,
) -> Result<bool, tokio_postgres::Error> {
    let until = serde_json::to_value(until).expect("a time serialises");
    let n = client
        .execute(
            "update freeze_orders set body = jsonb_set(body, '{ends_at}', $2), lifted_at = null, updated_at = now()
             where id = $1 and cancelled_at is null",
            &[&id, &until],
        )
        .await?;
    Ok(n == 1)
}

pub async fn cancel(
    client: &impl GenericClient,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    stamp(client, Stamp::Cancelled, id, at).await
}

enum Stamp {
    Lifted,
    Cancelled,
}

/// Sets `lifted_at` or `cancelled_at` once (a repeat keeps the first time); `false` when
/// there is no such order.
async fn stamp(
    client: &impl GenericClient,
    what: Stamp,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    let sql = match what {
        Stamp::Lifted => {
            "update freeze_orders set lifted_at = coalesce(lifted_at, $2), updated_at = now() where id = $1"
        }
        Stamp::Cancelled => {
            "update freeze_orders set cancelled_at = coalesce(cancelled_at, $2), updated_at = now() where id = $1"
        }
    };
    Ok(client.execute(sql, &[&id, &at]).await? == 1)
}

/// The latest change to any order: a replica reloads when it moves.
pub async fn version(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    let row = client
        .query_one("select max(updated_at) from freeze_orders", &[])
        .await?;
    Ok(row.get(0))
}

/// Claims the `what` transition (`started`/`ended`) of `order` on `line`; `true` for the one
/// replica that gets it.
pub async fn claim_transition(
    client: &impl GenericClient,
    order: &str,
    line: Line,
    what: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "insert into freeze_transitions (order_id, line, what) values ($1, $2, $3) on conflict do nothing",
            &[&order, &line.as_str(), &what],
        )
        .await?;
    Ok(n == 1)
}

/// The transitions already published, as `(order, line, what)`.
pub async fn transitions(
    client: &impl GenericClient,
) -> Result<Vec<(String, String, String)>, tokio_postgres::Error> {
    let rows = client
        .query("select order_id, line, what from freeze_transitions", &[])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// A command held in the backlog.
#[derive(Debug, Clone)]
pub struct Held {
    pub seq: i64,
    pub receipt_id: Uuid,
    pub line: Line,
    pub queue: String,
    pub order_id: String,
    pub message_id: Uuid,
    pub message_type: String,
    pub routing_key: String,
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
    pub app_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub resumes_at: Option<DateTime<Utc>>,
}

pub async fn hold(client: &impl GenericClient, h: &Held) -> Result<(), tokio_postgres::Error> {
    let headers = serde_json::to_value(&h.headers).expect("headers serialise");
    let stmt = client
        .prepare_cached(
            "insert into backlog (receipt_id, line, queue, order_id, message_id, message_type, routing_key,
                 reply_to, correlation_id, app_id, headers, body, received_at, resumes_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &h.receipt_id,
                &h.line.as_str(),
                &h.queue,
                &h.order_id,
                &h.message_id,
                &h.message_type,
                &h.routing_key,
                &h.reply_to,
                &h.correlation_id,
                &h.app_id,
                &headers,
                &h.body,
                &h.received_at,
                &h.resumes_at,
            ],
        )
        .await?;
    Ok(())
}

/// The oldest `limit` unprocessed requests of `line` after `after_seq`, in arrival order.
pub async fn pending(
    client: &impl GenericClient,
    line: Line,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Held>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "select seq, receipt_id, queue, order_id, message_id, message_type, routing_key, reply_to,
                    correlation_id, app_id, headers, body, received_at, resumes_at
             from backlog where line = $1 and processed_at is null and seq > $2 order by seq limit $3",
        )
        .await?;
    let rows = client.query(&stmt, &[&line.as_str(), &after_seq, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let headers: serde_json::Value = r.get(10);
            Held {
                seq: r.get(0),
                receipt_id: r.get(1),
                line,
                queue: r.get(2),
                order_id: r.get(3),
                message_id: r.get(4),
                message_type: r.get(5),
                routing_key: r.get(6),
                reply_to: r.get(7),
                correlation_id: r.get(8),
                app_id: r.get(9),
                headers: serde_json::from_value(headers).unwrap_or_default(),
                body: r.get(11),
                received_at: r.get(12),
                resumes_at: r.get(13),
            }
        })
        .collect())
}

/// Marks a held request done with its final reply.
pub async fn processed(
    client: &impl GenericClient,
    seq: i64,
    reply: &Reply,
    failed: bool,
) -> Result<bool, tokio_postgres::Error> {
    let reply = serde_json::to_value(reply).expect("a reply serialises");
    let stmt = client
        .prepare_cached(
            "update backlog set processed_at = now(), reply = $2, failed = $3 where seq = $1 and processed_at is null",
        )
        .await?;
    Ok(client.execute(&stmt, &[&seq, &reply, &failed]).await? == 1)
}

/// Records that the broker confirmed these held requests' final replies.
pub async fn replies_confirmed(
    client: &impl GenericClient,
    seqs: &[i64],
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "update backlog set reply_confirmed_at = now() where seq = any($1) and reply_confirmed_at is null",
        )
        .await?;
    client.execute(&stmt, &[&seqs]).await?;
    Ok(())
}

/// A processed held request whose final reply the broker has not confirmed.
#[derive(Debug, Clone)]
pub struct Unconfirmed {
    pub seq: i64,
    pub receipt_id: Uuid,
    pub reply_to: String,
    pub correlation_id: Option<String>,
    /// `None` when the stored reply no longer reads as one.
    pub reply: Option<Reply>,
}

/// The oldest `limit` of `line`'s processed requests with a `reply_to` whose final reply was
/// not confirmed, processed more than `grace_secs` ago (by the database's clock: a reply being
/// published right now is left to its drain).
pub async fn unconfirmed(
    client: &impl GenericClient,
    line: Line,
    grace_secs: f64,
    limit: i64,
) -> Result<Vec<Unconfirmed>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "select seq, receipt_id, reply_to, correlation_id, reply from backlog
             where line = $1 and processed_at is not null and reply_confirmed_at is null and reply_to is not null
               and processed_at < now() - make_interval(secs => $2)
             order by seq limit $3",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&line.as_str(), &grace_secs, &limit])
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let reply: Option<serde_json::Value> = r.get(4);
            Unconfirmed {
                seq: r.get(0),
                receipt_id: r.get(1),
                reply_to: r.get(2),
                correlation_id: r.get(3),
                reply: reply.and_then(|v| serde_json::from_value(v).ok()),
            }
        })
        .collect())
}

/// The lines with processed requests whose final reply was not confirmed, processed more than
/// `grace_secs` ago.
pub async fn unconfirmed_lines(
    client: &impl GenericClient,
    grace_secs: f64,
) -> Result<Vec<Line>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "select distinct line from backlog
             where processed_at is not null and reply_confirmed_at is null and reply_to is not null
               and processed_at < now() - make_interval(secs => $1)",
        )
        .await?;
    let rows = client.query(&stmt, &[&grace_secs]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<_, String>(0).parse().ok())
        .collect())
}

/// Per line: unprocessed requests and the arrival time of the oldest.
pub async fn stats(
    client: &impl GenericClient,
) -> Result<Vec<(Line, i64, Option<DateTime<Utc>>)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "select line, count(*), min(received_at) from backlog where processed_at is null group by line",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let line: String = r.get(0);
            Some((line.parse().ok()?, r.get(1), r.get(2)))
        })
        .collect())
}

/// A receipt and what became of it (`insurancectl receipt show`), or `None` when this
/// service holds no such receipt.
pub async fn receipt(
    client: &impl GenericClient,
    service: &str,
    id: Uuid,
) -> Result<Option<contracts::freeze::ReceiptRecord>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "select receipt_id, line, order_id, message_id, routing_key, received_at, resumes_at, processed_at, failed, reply
             from backlog where receipt_id = $1",
            &[&id],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let cst = contracts::freeze::cst();
    let line: String = r.get(1);
    let Ok(line) = line.parse::<Line>() else {
        return Ok(None);
    };
    let received_at: DateTime<Utc> = r.get(5);
    let resumes_at: Option<DateTime<Utc>> = r.get(6);
    let processed_at: Option<DateTime<Utc>> = r.get(7);
    let failed: bool = r.get(8);
    let reply: Option<serde_json::Value> = r.get(9);
    let state = match (processed_at, failed) {
        (None, _) => "held",
        (Some(_), false) => "processed",
        (Some(_), true) => "failed",
    };
    Ok(Some(contracts::freeze::ReceiptRecord {
        receipt: contracts::Receipt {
            id: r.get::<_, Uuid>(0).to_string(),
            received_at: Some(received_at.with_timezone(&cst)),
            resumes_at: resumes_at.map(|t| t.with_timezone(&cst)),
        },
        service: service.to_owned(),
        line,
        order: r.get(2),
        message_id: r.get(3),
        routing_key: r.get(4),
        state: state.into(),
        processed_at: processed_at.map(|t| t.with_timezone(&cst)),
        reply: reply.and_then(|v| serde_json::from_value(v).ok()),
    }))
}

/// Replaces the stored reply of a consumed message (the `deferred` receipt becomes the final
/// reply at thaw, so a repeat after the thaw gets the outcome).
pub async fn finalize_inbox(
    client: &impl GenericClient,
    message_id: Uuid,
    reply: &Reply,
) -> Result<bool, tokio_postgres::Error> {
    let reply = serde_json::to_value(reply).expect("a reply serialises");
    let stmt = client
        .prepare_cached("update inbox set reply = $2 where message_id = $1")
        .await?;
    Ok(client.execute(&stmt, &[&message_id, &reply]).await? == 1)
}

//! Inbox: once-in-effect consumption (DESIGN.md §4).
//!
//! One row per consumed message id, written in the handler's transaction together with the
//! reply a command got. A second delivery of the same id finds the row: the same type and
//! body is a repeat (answered with the stored reply, no effect); another type or body under
//! the same id is a conflict, never the other message's reply.

use contracts::Reply;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// What the inbox says about a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// First time: recorded now, with this reply (commands).
    New(Option<Reply>),
    /// Seen before with the same type and body: the stored reply.
    Repeat(Option<Reply>),
    /// Seen before with another type or body: why.
    Conflict(String),
}

/// Records `message_id` with its digest and the reply, unless it is there already; then says
/// what was found. Inside a transaction the insert waits for a concurrent first delivery of
/// the same id to commit or roll back.
pub async fn record(
    client: &impl GenericClient,
    message_id: Uuid,
    queue: &str,
    message_type: &str,
    body: &[u8],
    reply: Option<&Reply>,
) -> Result<Recorded, tokio_postgres::Error> {
    let value = reply.map(|r| serde_json::to_value(r).unwrap_or_default());
    let stmt = client
        .prepare_cached(
            "insert into inbox (message_id, queue, message_type, body_digest, reply)
             values ($1, $2, $3, sha256($4), $5)
             on conflict (message_id) do nothing",
        )
        .await?;
    let inserted = client
        .execute(&stmt, &[&message_id, &queue, &message_type, &body, &value])
        .await?;
    if inserted == 1 {
        return Ok(Recorded::New(reply.cloned()));
    }
    Ok(lookup(client, message_id, message_type, body)
        .await?
        .unwrap_or(Recorded::Conflict(
            "the inbox row vanished while it was read".into(),
        )))
}

/// What the inbox holds for `message_id`, compared with this delivery's type and body;
/// `None` when it was never consumed.
pub async fn lookup(
    client: &impl GenericClient,
    message_id: Uuid,
    message_type: &str,
    body: &[u8],
) -> Result<Option<Recorded>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "select message_type, body_digest is null or body_digest = sha256($2), reply
             from inbox where message_id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&message_id, &body]).await? else {
        return Ok(None);
    };
    let stored_type: String = row.get(0);
    let same_body: bool = row.get(1);
    if stored_type != message_type {
        return Ok(Some(Recorded::Conflict(format!(
            "message id {message_id} was already used for a message of type '{stored_type}'"
        ))));
    }
    if !same_body {
        return Ok(Some(Recorded::Conflict(format!(
            "message id {message_id} was already used for a different {stored_type} body"
        ))));
    }
    let reply: Option<serde_json::Value> = row.get(2);
    Ok(Some(Recorded::Repeat(
        reply.and_then(|r| serde_json::from_value(r).ok()),
    )))
}

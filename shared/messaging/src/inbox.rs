//! Inbox: once-in-effect consumption (DESIGN.md §4).

use contracts::Reply;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// Records `message_id` as consumed. Returns `None` when it is new, or `Some(stored reply)`
/// when it was consumed before (the inner option is the reply stored for a command).
pub async fn claim(
    tx: &impl GenericClient,
    message_id: Uuid,
    queue: &str,
    message_type: &str,
) -> Result<Option<Option<Reply>>, tokio_postgres::Error> {
    let inserted = tx
        .execute(
            "insert into inbox (message_id, queue, message_type) values ($1, $2, $3)
             on conflict (message_id) do nothing",
            &[&message_id, &queue, &message_type],
        )
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    let row = tx
        .query_one("select reply from inbox where message_id = $1", &[&message_id])
        .await?;
    let reply: Option<serde_json::Value> = row.get(0);
    Ok(Some(reply.and_then(|r| serde_json::from_value(r).ok())))
}

/// Stores the reply sent for a command, so that a repeat gets exactly the same answer.
pub async fn store_reply(
    tx: &impl GenericClient,
    message_id: Uuid,
    reply: &Reply,
) -> Result<(), tokio_postgres::Error> {
    let value = serde_json::to_value(reply).unwrap_or_default();
    tx.execute(
        "update inbox set reply = $2 where message_id = $1",
        &[&message_id, &value],
    )
    .await?;
    Ok(())
}

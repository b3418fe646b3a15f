//! Reads a delivery once: envelope, headers, routing key and JSON body. Everything after
//! this works on the parsed [`Incoming`]; a delivery that cannot be read is malformed.

use super::Incoming;
use crate::envelope::{Envelope, death_routing_key};
use crate::topology::ConsumedQueue;
use contracts::envelope::parse_routing_key;
use lapin::message::Delivery;

/// Set on a message republished through the default exchange (retry, parking, replay): the
/// routing key it was first sent with.
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
pub const ORIGINAL_EXCHANGE: &str = "x-original-exchange";

pub(crate) enum Decoded {
    Ok(Box<Incoming>),
    /// Cannot be read; parked with this reason. The envelope, when it could be read, lets a
    /// command still get its `MALFORMED_MESSAGE` reply.
    Malformed(String),
}

/// The routing key the sender used: our header for messages we republished, the broker's
/// `x-death` for messages dead-lettered by a delivery limit, else the delivery's own.
pub(crate) fn original_routing_key(
    delivery: &Delivery,
    envelope_headers: &std::collections::BTreeMap<String, String>,
) -> String {
    if let Some(k) = envelope_headers.get(ORIGINAL_ROUTING_KEY) {
        return k.clone();
    }
    if delivery.exchange.as_str().is_empty()
        && let Some(k) = death_routing_key(&delivery.properties)
    {
        return k;
    }
    delivery.routing_key.to_string()
}

pub(crate) fn decode(
    queue: &ConsumedQueue,
    delivery: &Delivery,
    now: chrono::DateTime<chrono::Utc>,
) -> Decoded {
    let envelope = match Envelope::from_properties(&delivery.properties) {
        Ok(e) => e,
        Err(e) => return Decoded::Malformed(format!("bad envelope: {e}")),
    };
    let routing_key = original_routing_key(delivery, &envelope.headers);
    let Some((line, service, name)) = parse_routing_key(&routing_key) else {
        return Decoded::Malformed(format!(
            "routing key '{routing_key}' is not <line>.<service>.<name>"
        ));
    };
    let body: serde_json::Value = match serde_json::from_slice(&delivery.data) {
        Ok(v) => v,
        Err(e) => return Decoded::Malformed(format!("body is not JSON: {e}")),
    };
    Decoded::Ok(Box::new(Incoming {
        envelope,
        line,
        kind: queue.kind,
        name: name.to_owned(),
        service: service.to_owned(),
        body,
        received_at: now,
    }))
}

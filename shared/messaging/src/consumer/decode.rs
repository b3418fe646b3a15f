//! Reads a delivery once: envelope, headers, routing key and JSON body. Everything after
//! this works on the parsed [`Incoming`]; a delivery that cannot be read is malformed.

use super::Incoming;
use crate::envelope::{Envelope, death_routing_key};
use crate::topology::ConsumedQueue;
use contracts::MessageKind;
use contracts::envelope::parse_routing_key;
use lapin::BasicProperties;
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
    routing_key_of(
        delivery.exchange.as_str(),
        delivery.routing_key.as_str(),
        &delivery.properties,
        envelope_headers,
    )
}

fn routing_key_of(
    exchange: &str,
    routing_key: &str,
    properties: &BasicProperties,
    envelope_headers: &std::collections::BTreeMap<String, String>,
) -> String {
    if let Some(k) = envelope_headers.get(ORIGINAL_ROUTING_KEY) {
        return k.clone();
    }
    if exchange.is_empty()
        && let Some(k) = death_routing_key(properties)
    {
        return k;
    }
    routing_key.to_owned()
}

pub(crate) fn decode(
    queue: &ConsumedQueue,
    delivery: &Delivery,
    now: chrono::DateTime<chrono::Utc>,
) -> Decoded {
    match decode_parts(
        queue.kind,
        delivery.exchange.as_str(),
        delivery.routing_key.as_str(),
        &delivery.properties,
        &delivery.data,
        now,
    ) {
        Ok(incoming) => Decoded::Ok(Box::new(incoming)),
        Err(reason) => Decoded::Malformed(reason),
    }
}

/// What the consumer does with a delivery's raw parts (exchange, routing key, AMQP
/// properties and headers, body bytes) before any handler runs: the [`Incoming`], or the
/// reason it is parked as malformed. Public for the fuzz targets and property tests
/// (`fuzz/`, `shared/decoder-checks`), which cannot build a lapin `Delivery`; the consumer
/// itself goes through it for every delivery.
pub fn decode_parts(
    kind: MessageKind,
    exchange: &str,
    routing_key: &str,
    properties: &BasicProperties,
    data: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Incoming, String> {
    let envelope = Envelope::from_properties(properties).map_err(|e| format!("bad envelope: {e}"))?;
    let routing_key = routing_key_of(exchange, routing_key, properties, &envelope.headers);
    let Some((line, service, name)) = parse_routing_key(&routing_key) else {
        return Err(format!(
            "routing key '{routing_key}' is not <line>.<service>.<name>"
        ));
    };
    let body: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("body is not JSON: {e}"))?;
    Ok(Incoming {
        envelope,
        line,
        kind,
        name: name.to_owned(),
        service: service.to_owned(),
        body,
        received_at: now,
    })
}

//! Mapping between the envelope of DESIGN.md §3 and AMQP properties and headers.

use chrono::{DateTime, TimeZone, Utc};
use contracts::{Channel, headers as h};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What a consumer knows about a message besides its body.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub message_id: Uuid,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// `<service>.<name>.v<N>`.
    pub message_type: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub app_id: Option<String>,
    pub channel: Option<Channel>,
    pub operator: Option<String>,
    /// Every header as a string (non-string values rendered), for tracing and parking.
    pub headers: BTreeMap<String, String>,
}

/// Why an envelope could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message_id property is missing")]
    MissingMessageId,
    #[error("message_id '{0}' is not a UUID")]
    BadMessageId(String),
    #[error("x-channel header '{0}' is not a known channel")]
    BadChannel(String),
}

/// Renders an AMQP header value as text (headers we write are always strings).
pub fn value_to_string(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        other => format!("{other:?}"),
    }
}

/// The routing key a message had before the broker dead-lettered it (from `x-death`), for
/// messages parked by a queue's delivery limit: those carry no header of ours.
pub fn death_routing_key(props: &BasicProperties) -> Option<String> {
    let deaths = match props.headers().as_ref()?.inner().get("x-death")? {
        AMQPValue::FieldArray(a) => a.as_slice().to_vec(),
        _ => return None,
    };
    let key_of = |t: &FieldTable| -> Option<String> {
        match t.inner().get("routing-keys")? {
            AMQPValue::FieldArray(keys) => keys.as_slice().first().map(value_to_string),
            _ => None,
        }
    };
    let tables: Vec<&FieldTable> = deaths
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .collect();
    // Most recent death first; the delivery-limit death names the key it arrived with.
    let reason = |t: &FieldTable| t.inner().get("reason").map(value_to_string);
    tables
        .iter()
        .find(|t| reason(t).as_deref() == Some("delivery_limit"))
        .or_else(|| tables.last())
        .and_then(|t| key_of(t))
}

pub fn headers_of(props: &BasicProperties) -> BTreeMap<String, String> {
    props
        .headers()
        .as_ref()
        .map(|t| {
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), value_to_string(v)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn field_table(headers: &BTreeMap<String, String>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in headers {
        t.insert(
            ShortString::from(k.as_str()),
            AMQPValue::LongString(LongString::from(v.as_str())),
        );
    }
    t
}

impl Envelope {
    pub fn from_properties(props: &BasicProperties) -> Result<Self, EnvelopeError> {
        let raw_id = props
            .message_id()
            .as_ref()
            .ok_or(EnvelopeError::MissingMessageId)?;
        let message_id =
            Uuid::parse_str(raw_id.as_str()).map_err(|_| EnvelopeError::BadMessageId(raw_id.to_string()))?;
        let headers = headers_of(props);
        let channel = match headers.get(h::CHANNEL) {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| EnvelopeError::BadChannel(c.clone()))?),
        };
        Ok(Envelope {
            message_id,
            correlation_id: props.correlation_id().as_ref().map(|s| s.to_string()),
            reply_to: props.reply_to().as_ref().map(|s| s.to_string()),
            message_type: props.kind().as_ref().map(|s| s.to_string()),
            timestamp: props
                .timestamp()
                .and_then(|t| Utc.timestamp_opt(i64::try_from(t).ok()?, 0).single()),
            app_id: props.app_id().as_ref().map(|s| s.to_string()),
            channel,
            operator: headers.get(h::OPERATOR).cloned(),
            headers,
        })
    }

    /// The id that ties a conversation together: the correlation id, else the message id.
    pub fn correlation(&self) -> String {
        self.correlation_id
            .clone()
            .unwrap_or_else(|| self.message_id.to_string())
    }
}

/// Builds the properties for a message we send now: JSON, persistent, CloudEvents headers.
pub fn properties(
    message_id: Uuid,
    message_type: &str,
    correlation_id: Option<&str>,
    reply_to: Option<&str>,
    app_id: &str,
    headers: BTreeMap<String, String>,
) -> BasicProperties {
    properties_at(
        Utc::now(),
        message_id,
        message_type,
        correlation_id,
        reply_to,
        app_id,
        headers,
    )
}

/// As [`properties`], for a message that happened at `now`: `ce-time` and `timestamp` are
/// when the event happened (the outbox row's `created_at`), not when the relay sent it;
/// after an outage or a freeze the two differ by days.
pub fn properties_at(
    now: DateTime<Utc>,
    message_id: Uuid,
    message_type: &str,
    correlation_id: Option<&str>,
    reply_to: Option<&str>,
    app_id: &str,
    mut headers: BTreeMap<String, String>,
) -> BasicProperties {
    headers
        .entry(h::CE_SPECVERSION.into())
        .or_insert_with(|| h::CE_SPECVERSION_VALUE.into());
    headers
        .entry(h::CE_ID.into())
        .or_insert_with(|| message_id.to_string());
    headers
        .entry(h::CE_SOURCE.into())
        .or_insert_with(|| format!("/insurance/{app_id}"));
    headers
        .entry(h::CE_TYPE.into())
        .or_insert_with(|| message_type.to_owned());
    headers
        .entry(h::CE_TIME.into())
        .or_insert_with(|| now.to_rfc3339());
    let mut props = BasicProperties::default()
        .with_message_id(message_id.to_string().into())
        .with_content_type(h::CONTENT_TYPE_JSON.into())
        .with_type(message_type.into())
        .with_timestamp(now.timestamp().max(0) as u64)
        .with_app_id(app_id.into())
        // 2 = persistent: survives a broker restart together with the durable queue.
        .with_delivery_mode(2)
        .with_headers(field_table(&headers));
    if let Some(c) = correlation_id {
        props = props.with_correlation_id(c.into());
    }
    if let Some(r) = reply_to {
        props = props.with_reply_to(r.into());
    }
    props
}

//! A delivery as the broker hands it over (exchange, routing key, AMQP properties and
//! headers, body bytes), made up from fuzz bytes, through what the consumer does with it
//! before a handler runs: `messaging::consumer::decode_parts`, then the ordering key, the
//! retry count, the trace id, the message type, and the body as the type its routing key
//! names.
//!
//! Properties: no panic; what decodes keeps the message id, the line and the names of the
//! routing key; the message type round-trips; a body that decodes as its type round-trips
//! ([`crate::bodies::check_value`]).

use crate::{bodies, examples, mutate};
use arbitrary::Arbitrary;
use contracts::{Line, MessageKind, MessageType, headers as h};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use messaging::consumer::{ORIGINAL_EXCHANGE, ORIGINAL_ROUTING_KEY, decode_parts};

/// Header names the consumer reads, and the broker's.
pub const HEADER_NAMES: &[&str] = &[
    h::CHANNEL,
    h::OPERATOR,
    h::RETRY_COUNT,
    h::TRACEPARENT,
    h::TRACESTATE,
    h::CE_ID,
    h::CE_TYPE,
    h::CE_TIME,
    h::CE_SOURCE,
    h::CE_SPECVERSION,
    h::PARKED_REASON,
    h::PARKED_FROM,
    h::PARKED_AT,
    h::PARKED_CODE,
    ORIGINAL_ROUTING_KEY,
    ORIGINAL_EXCHANGE,
    "x-death",
];

const CHANNELS: &[&str] = &[
    "online",
    "mobile",
    "kiosk",
    "counter",
    "bank",
    "tax",
    "institution",
    "data-sharing",
];

#[derive(Arbitrary, Debug, Clone)]
pub struct RawDelivery {
    pub command: bool,
    /// Empty for the default exchange (retries, parking, replay).
    pub exchange: Option<String>,
    pub routing_key: Route,
    pub message_id: MessageId,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub message_type: Option<TypeText>,
    pub timestamp: Option<u64>,
    pub app_id: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Route {
    /// `<line>.<service>.<name>` of a consumed body type of the registry (index modulo).
    Registered {
        line: u8,
        index: u16,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum MessageId {
    Uuid(u128),
    Raw(String),
    Missing,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum TypeText {
    /// `<service>.<name>.v<version>` of the registered type.
    Registered {
        index: u16,
        version: u32,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum HeaderName {
    Known(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum HeaderValue {
    Long(Vec<u8>),
    Short(String),
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(u8, u32),
    Timestamp(u64),
    Bytes(Vec<u8>),
    Void,
    Array(Vec<HeaderValue>),
    Table(Vec<(String, HeaderValue)>),
    /// A known channel name (`x-channel`).
    Channel(u8),
    /// A routing key of the registry (`x-original-routing-key`).
    Route(Route),
    /// The broker's `x-death` entry: a reason and the routing keys.
    Death {
        delivery_limit: bool,
        keys: Vec<Route>,
    },
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Body {
    /// The example of the type the routing key names (or of type `index`), mutated.
    Example {
        index: Option<u16>,
        mutations: Vec<mutate::Mutation>,
    },
    Raw(Vec<u8>),
}

/// The registry's consumed types: `(service, name, file index)`.
fn consumed() -> &'static [(String, String, usize)] {
    static CONSUMED: std::sync::OnceLock<Vec<(String, String, usize)>> = std::sync::OnceLock::new();
    CONSUMED.get_or_init(|| {
        bodies::types()
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let (s, n) = bodies::consumed_as(&t.file)?;
                Some((s.to_owned(), n.to_owned(), i))
            })
            .collect()
    })
}

fn route(r: &Route) -> String {
    match r {
        Route::Registered { line, index } => {
            let (service, name, _) = &consumed()[usize::from(*index) % consumed().len()];
            let line = Line::ALL[usize::from(*line) % Line::ALL.len()];
            format!("{line}.{service}.{name}")
        }
        Route::Raw(s) => s.clone(),
    }
}

const MAX_DEPTH: u32 = 4;

/// An AMQP short string (property values, header names, exchange and routing key) holds at
/// most 255 bytes on the wire, so no delivery has a longer one; lapin's `ShortString::from`
/// panics on one (a 341-byte `app_id` made a 5-minute run of `envelope` crash, the
/// harness's fault). Longer text is cut at a character boundary.
pub fn short_text(s: &str) -> &str {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn short(s: &str) -> ShortString {
    ShortString::from(short_text(s))
}

fn amqp(v: &HeaderValue, depth: u32) -> AMQPValue {
    if depth > MAX_DEPTH {
        return AMQPValue::Void;
    }
    match v {
        HeaderValue::Long(b) => AMQPValue::LongString(LongString::from(b.clone())),
        HeaderValue::Short(s) => AMQPValue::ShortString(short(s)),
        HeaderValue::Bool(b) => AMQPValue::Boolean(*b),
        HeaderValue::I8(i) => AMQPValue::ShortShortInt(*i),
        HeaderValue::U8(i) => AMQPValue::ShortShortUInt(*i),
        HeaderValue::I16(i) => AMQPValue::ShortInt(*i),
        HeaderValue::U16(i) => AMQPValue::ShortUInt(*i),
        HeaderValue::I32(i) => AMQPValue::LongInt(*i),
        HeaderValue::U32(i) => AMQPValue::LongUInt(*i),
        HeaderValue::I64(i) => AMQPValue::LongLongInt(*i),
        HeaderValue::F32(f) => AMQPValue::Float(*f),
        HeaderValue::F64(f) => AMQPValue::Double(*f),
        HeaderValue::Decimal(scale, value) => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        HeaderValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        HeaderValue::Bytes(b) => AMQPValue::ByteArray(b.clone().into()),
        HeaderValue::Void => AMQPValue::Void,
        HeaderValue::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(|i| amqp(i, depth + 1)).collect::<Vec<_>>(),
        )),
        HeaderValue::Table(entries) => {
            let mut t = FieldTable::default();
            for (k, v) in entries {
                t.insert(short(k), amqp(v, depth + 1));
            }
            AMQPValue::FieldTable(t)
        }
        HeaderValue::Channel(i) => AMQPValue::LongString(CHANNELS[usize::from(*i) % CHANNELS.len()].into()),
        HeaderValue::Route(r) => AMQPValue::LongString(route(r).into()),
        HeaderValue::Death { delivery_limit, keys } => {
            let mut t = FieldTable::default();
            let reason = if *delivery_limit {
                "delivery_limit"
            } else {
                "rejected"
            };
            t.insert("reason".into(), AMQPValue::LongString(reason.into()));
            let keys: Vec<AMQPValue> = keys
                .iter()
                .map(|k| AMQPValue::LongString(route(k).into()))
                .collect();
            t.insert("routing-keys".into(), AMQPValue::FieldArray(keys.into()));
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(t)].into())
        }
    }
}

/// The AMQP properties of `d`.
pub fn properties(d: &RawDelivery) -> BasicProperties {
    let mut p = BasicProperties::default();
    match &d.message_id {
        MessageId::Uuid(u) => p = p.with_message_id(uuid::Uuid::from_u128(*u).to_string().into()),
        MessageId::Raw(s) => p = p.with_message_id(short(s)),
        MessageId::Missing => {}
    }
    if let Some(c) = &d.correlation_id {
        p = p.with_correlation_id(short(c));
    }
    if let Some(r) = &d.reply_to {
        p = p.with_reply_to(short(r));
    }
    if let Some(t) = &d.message_type {
        let text = match t {
            TypeText::Registered { index, version } => {
                let (service, name, _) = &consumed()[usize::from(*index) % consumed().len()];
                format!("{service}.{name}.v{version}")
            }
            TypeText::Raw(s) => s.clone(),
        };
        p = p.with_type(short(&text));
    }
    if let Some(t) = d.timestamp {
        p = p.with_timestamp(t);
    }
    if let Some(a) = &d.app_id {
        p = p.with_app_id(short(a));
    }
    if !d.headers.is_empty() {
        let mut t = FieldTable::default();
        for (name, value) in &d.headers {
            let name = match name {
                HeaderName::Known(i) => HEADER_NAMES[usize::from(*i) % HEADER_NAMES.len()].to_owned(),
                HeaderName::Raw(s) => s.clone(),
            };
            t.insert(short(&name), amqp(value, 0));
        }
        p = p.with_headers(t);
    }
    p
}

/// The body bytes of `d`, given the routing key it is sent with.
pub fn body(d: &RawDelivery, routing_key: &str) -> Vec<u8> {
    match &d.body {
        Body::Raw(b) => b.clone(),
        Body::Example { index, mutations } => {
            let named = routing_key
                .split_once('.')
                .map(|(_, rest)| rest)
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(s, n)| consumed().iter().find(|(cs, cn, _)| cs == s && cn == n))
                .map(|(_, _, i)| *i);
            let i = match index {
                Some(i) => usize::from(*i) % examples::all().len(),
                None => named.unwrap_or(0),
            };
            let mut v = examples::all()[i].1.clone();
            mutate::apply(&mut v, mutations);
            serde_json::to_vec(&v).expect("a JSON value serialises")
        }
    }
}

/// How far a delivery got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Parked as malformed by the consumer.
    Malformed,
    /// Decoded; the routing key names no registered type of this kind.
    Unknown,
    /// Decoded; `true` when the body decoded as the type the routing key names.
    Body(bool),
}

/// Runs the consumer's decode on `d` and checks the properties.
pub fn check(d: &RawDelivery) -> Outcome {
    let props = properties(d);
    let routing_key = short_text(&route(&d.routing_key)).to_owned();
    let data = body(d, &routing_key);
    let kind = if d.command {
        MessageKind::Command
    } else {
        MessageKind::Event
    };
    let exchange = short_text(d.exchange.as_deref().unwrap_or(""));
    let now = chrono::DateTime::from_timestamp(1_710_000_000, 0).expect("a valid time");
    let incoming = match decode_parts(kind, exchange, &routing_key, &props, &data, now) {
        Ok(i) => i,
        Err(reason) => {
            assert!(!reason.is_empty(), "a malformed delivery says why");
            return Outcome::Malformed;
        }
    };
    let raw_id = props.message_id().as_ref().map(|m| m.as_str().to_owned());
    assert_eq!(
        raw_id.as_deref().map(uuid::Uuid::parse_str).and_then(Result::ok),
        Some(incoming.envelope.message_id),
        "the message id is the property's"
    );
    // What the consumer and the handlers read next.
    let _ = incoming.envelope.correlation();
    let _ = contracts::ordering::key_of(&incoming.service, &incoming.name, &incoming.body);
    let _ = incoming
        .envelope
        .headers
        .get(h::RETRY_COUNT)
        .map(|v| v.parse::<u32>());
    if let Some(tp) = incoming.envelope.headers.get(h::TRACEPARENT) {
        let _ = messaging::trace::trace_id(tp);
    }
    if let Some(t) = incoming
        .envelope
        .message_type
        .as_deref()
        .and_then(MessageType::parse)
    {
        assert_eq!(
            MessageType::parse(&t.to_string()),
            Some(t.clone()),
            "message type {t} round-trips"
        );
        let _ = t.routing_key(incoming.line);
    }
    let is_command = |file: &str| file.ends_with(".command.json");
    let named = bodies::types().iter().find(|t| {
        is_command(&t.file) == (kind == MessageKind::Command)
            && bodies::consumed_as(&t.file) == Some((incoming.service.as_str(), incoming.name.as_str()))
    });
    match named {
        Some(ty) => Outcome::Body(bodies::check_value(ty, &incoming.body)),
        None => Outcome::Unknown,
    }
}

/// The fuzz target: the bytes as a [`RawDelivery`].
pub fn fuzz(data: &[u8]) {
    let mut u = arbitrary::Unstructured::new(data);
    if let Ok(d) = RawDelivery::arbitrary(&mut u) {
        check(&d);
    }
}

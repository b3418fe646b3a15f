//! The envelope: which AMQP properties and headers every message carries (DESIGN.md §3).
//!
//! Properties: `message_id` (UUID v7, the idempotency key), `correlation_id`, `reply_to`
//! (commands), `content_type: application/json`, `type` (`<service>.<name>.v<N>`),
//! `timestamp`, `app_id`. Headers: CloudEvents binary mode, W3C trace context, channel and
//! operator. The messaging crate maps these onto lapin; this module only names them.

use crate::line::Line;
use std::fmt;

/// Header names. `ce-` headers follow the CloudEvents AMQP binding (binary content mode).
pub mod headers {
    pub const CE_SPECVERSION: &str = "ce-specversion";
    pub const CE_ID: &str = "ce-id";
    pub const CE_SOURCE: &str = "ce-source";
    pub const CE_TYPE: &str = "ce-type";
    pub const CE_TIME: &str = "ce-time";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    pub const CHANNEL: &str = "x-channel";
    pub const OPERATOR: &str = "x-operator";
    /// Number of times a message went through a delayed retry queue.
    pub const RETRY_COUNT: &str = "x-retry-count";
    /// Set on parked messages: why, from which queue, when, and the error code.
    pub const PARKED_REASON: &str = "x-parked-reason";
    pub const PARKED_FROM: &str = "x-parked-from";
    pub const PARKED_AT: &str = "x-parked-at";
    pub const PARKED_CODE: &str = "x-parked-code";
    pub const CONTENT_TYPE_JSON: &str = "application/json";
    pub const CE_SPECVERSION_VALUE: &str = "1.0";
}

/// Whether a message asks for something (gets a reply) or states a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Command,
    Event,
}

/// A message's `type`: `<service>.<name>.v<N>`, e.g. `enrollment.person-enrolled.v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageType {
    pub service: String,
    pub name: String,
    pub version: u32,
}

impl MessageType {
    pub fn new(service: &str, name: &str, version: u32) -> Self {
        MessageType {
            service: service.to_owned(),
            name: name.to_owned(),
            version,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (rest, v) = s.rsplit_once(".v")?;
        let version = v.parse().ok()?;
        let (service, name) = rest.split_once('.')?;
        if service.is_empty() || name.is_empty() {
            return None;
        }
        Some(MessageType::new(service, name, version))
    }

    /// Routing key for this message on `line`: `<line>.<service>.<name>`.
    pub fn routing_key(&self, line: Line) -> String {
        format!("{line}.{}.{}", self.service, self.name)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.v{}", self.service, self.name, self.version)
    }
}

/// Splits a routing key `<line>.<service>.<name>`.
pub fn parse_routing_key(key: &str) -> Option<(Line, &str, &str)> {
    let mut parts = key.splitn(3, '.');
    let line = parts.next()?.parse().ok()?;
    let service = parts.next()?;
    let name = parts.next()?;
    Some((line, service, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips() {
        let t = MessageType::parse("enrollment.person-enrolled.v1").unwrap();
        assert_eq!(t, MessageType::new("enrollment", "person-enrolled", 1));
        assert_eq!(t.to_string(), "enrollment.person-enrolled.v1");
        assert_eq!(t.routing_key(Line::Social), "social.enrollment.person-enrolled");
        assert!(MessageType::parse("enrollment.person-enrolled").is_none());
        assert!(MessageType::parse("x.vq").is_none());
    }

    #[test]
    fn routing_keys_split_into_line_service_and_name() {
        assert_eq!(
            parse_routing_key("medical.enrollment.enroll-person"),
            Some((Line::Medical, "enrollment", "enroll-person"))
        );
        assert_eq!(parse_routing_key("nowhere.enrollment.x"), None);
    }
}

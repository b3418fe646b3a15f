//! The reply every command gets, on `reply_to`, with the command's `correlation_id`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    Ok,
    Rejected,
    /// Accepted into the backlog during a freeze (收件), with a receipt.
    Deferred,
    /// Refused because the line or channel is frozen, with when it resumes.
    Suspended,
}

/// Stable, upper-case error codes. Back-office systems branch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Not JSON, wrong shape, or a missing/invalid envelope property.
    MalformedMessage,
    /// The routing key names a command this service does not have.
    UnknownCommand,
    /// A field's value is not acceptable; `field` names it.
    InvalidField,
    /// GB 11643 check character or an impossible birth date.
    InvalidIdNumber,
    /// GB 32100 unified social credit code failed its check.
    InvalidCreditCode,
    NotFound,
    /// The request contradicts current state (e.g. already actively enrolled).
    Conflict,
    NotEligible,
    /// The service failed in a way the sender cannot fix; safe to retry with the same id.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedMessage => "MALFORMED_MESSAGE",
            ErrorCode::UnknownCommand => "UNKNOWN_COMMAND",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InvalidIdNumber => "INVALID_ID_NUMBER",
            ErrorCode::InvalidCreditCode => "INVALID_CREDIT_CODE",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::NotEligible => "NOT_ELIGIBLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human readable; safe to show to back-office staff (never contains unmasked IDs).
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

/// Receipt for a deferred request (收件回执).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Receipt {
    pub id: String,
    /// When the service took the request in; at thaw it is judged as of this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// The planned end of the freeze that holds it; `null` when it is to be announced.
    #[serde(default)]
    pub resumes_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// The `result` of a `suspended` reply: why, until when, and where to go instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Suspension {
    /// The freeze order that refused the request.
    pub order: String,
    /// `null` when the end is to be announced (另行通知).
    pub resumes_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    pub announcement: String,
    /// A channel that stays open for this request (channel routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_channel: Option<crate::Channel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reply {
    pub status: ReplyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl Reply {
    pub fn ok(result: serde_json::Value) -> Self {
        Reply {
            status: ReplyStatus::Ok,
            result: Some(result),
            error: None,
            receipt: None,
        }
    }

    pub fn rejected(error: ErrorBody) -> Self {
        Reply {
            status: ReplyStatus::Rejected,
            result: None,
            error: Some(error),
            receipt: None,
        }
    }

    /// Taken into the backlog during a freeze (收件), with its receipt.
    pub fn deferred(receipt: Receipt) -> Self {
        Reply {
            status: ReplyStatus::Deferred,
            result: None,
            error: None,
            receipt: Some(receipt),
        }
    }

    /// Refused because the line or channel is frozen; not stored as the final reply.
    pub fn suspended(s: Suspension) -> Self {
        Reply {
            status: ReplyStatus::Suspended,
            result: Some(serde_json::to_value(&s).unwrap_or_default()),
            error: None,
            receipt: None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == ReplyStatus::Ok
    }

    /// The error code of a rejection, if this is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(|e| e.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_reply_has_the_documented_wire_shape() {
        let r = Reply::rejected(
            ErrorBody::new(ErrorCode::InvalidIdNumber, "bad check character").with_field("id_number"),
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"status": "rejected", "error": {
                "code": "INVALID_ID_NUMBER", "message": "bad check character", "field": "id_number"}})
        );
    }

    #[test]
    fn error_code_strings_match_serde() {
        for c in [
            ErrorCode::MalformedMessage,
            ErrorCode::UnknownCommand,
            ErrorCode::InvalidField,
            ErrorCode::InvalidIdNumber,
            ErrorCode::InvalidCreditCode,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::NotEligible,
            ErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}

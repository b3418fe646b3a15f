//! Notification service contract (DOMAIN.md §7): the SMS it sends are decided from the other
//! services' events; these commands, on the `common` line (`common.notification.<command>`),
//! let a person opt out of a category and let agents and operators see what was sent.

use crate::ordering::KeySource;
use crate::schema::{Body, Registry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "notification";

/// The commands, in the order the README documents them.
pub const COMMANDS: &[&str] = &["set-opt-out", "list-notifications"];

/// Message categories. `service` messages are required by law and cannot be opted out of;
/// `reminder` messages can, and respect quiet hours.
pub const CATEGORIES: &[&str] = &["service", "reminder", "announcement"];

/// `set-opt-out`: a person opts out of (or back into) one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOptOut {
    pub id_number: String,
    /// `reminder` (the only category that can be opted out of).
    pub category: String,
    pub opted_out: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OptOutView {
    pub id_number: String,
    pub category: String,
    pub opted_out: bool,
}

/// `list-notifications`: what was sent to one person (`id_number`) or employer
/// (`credit_code`), or for one freeze order's announcements (`announcement`), newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNotifications {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_code: Option<String>,
    /// A freeze order id: its announcements and the bulk send's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement: Option<String>,
    /// At most this many messages (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationView {
    pub notification_id: String,
    /// `person:<id_number>` or `employer:<credit_code>`.
    pub recipient: String,
    pub phone: String,
    pub category: String,
    /// The template and its version (`contribution-assessed@1`).
    pub template: String,
    pub text: String,
    /// `queued`, `submitted`, `delivered`, `failed` or `expired`.
    pub state: String,
    /// SMS parts (a long Chinese text is sent concatenated).
    pub parts: i32,
    pub attempts: i32,
    pub created_at: chrono::DateTime<chrono::FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One phase of a freeze order's announcement and how far its bulk send has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnnouncementView {
    pub order: String,
    /// `before`, `start` or `end`.
    pub phase: String,
    pub due_at: chrono::DateTime<chrono::FixedOffset>,
    /// Recipients queued so far, and whether every recipient of the line has been reached.
    pub queued: i64,
    pub complete: bool,
    pub delivered: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announcements: Vec<AnnouncementView>,
}

/// Opt-outs are per person, in order; the listing changes nothing.
pub fn ordering_source(name: &str) -> Option<KeySource> {
    match name {
        "set-opt-out" => Some(KeySource::Field {
            aggregate: "person",
            field: "id_number",
        }),
        "list-notifications" => Some(KeySource::None),
        _ => None,
    }
}

/// The notification schemas, for `crate::schema::all`.
pub fn schema_entries(out: &mut impl Registry) {
    fn entry<T: Body>(out: &mut impl Registry, name: &str) {
        out.add::<T>(format!("{SERVICE}.{name}.json"));
    }
    entry::<SetOptOut>(out, "set-opt-out.command");
    entry::<OptOutView>(out, "set-opt-out.result");
    entry::<ListNotifications>(out, "list-notifications.command");
    entry::<NotificationList>(out, "list-notifications.result");
}

//! Sends the collection commands that are due by the calendar: the monthly assessment of the
//! previous month (on `assess_day`) and the daily arrears check. They go through the broker
//! like any other command, with a message id derived from what and when, so that replicas
//! sending the same order at the same time are deduplicated by the inbox.

use contracts::{Line, ids::YearMonth};
use messaging::broker::BrokerConfig;
use messaging::client::{Command, CommandClient};
use serde::Deserialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ScheduleSettings {
    pub enabled: bool,
    /// Day of the month on which month M is assessed: of M itself when `assess_in` is
    /// `same_month`, of M+1 when `next_month`.
    pub assess_day: u32,
    /// Must follow the region's policy `deadline_month`: a region that collects M within M
    /// (Wuhan, Jinan) has to assess M before its deadline, so in M; Hangzhou assesses in M+1.
    pub assess_in: crate::domain::deadline::DeadlineMonth,
    /// How often to look at the clock.
    pub check_every_secs: u64,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            enabled: true,
            assess_day: 1,
            // The default region is Wuhan, which pays month M within M.
            assess_in: crate::domain::deadline::DeadlineMonth::SameMonth,
            check_every_secs: 60,
        }
    }
}

/// The commands the schedule sends (to this service, on every business line).
pub const ASSESS_MONTH: &str = "assess-month";
pub const DETECT_ARREARS: &str = "detect-arrears";
pub const COMMANDS: [&str; 2] = [ASSESS_MONTH, DETECT_ARREARS];

/// A stable id for "this order, for this period": the same on every replica.
pub fn order_id(order: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("insurance.collection.schedule:{order}").as_bytes(),
    )
}

/// The commands due on `today`: the assessment of the month `assess_in` names (this month,
/// or the previous one) once `assess_day` has come, and the arrears check, per line.
pub fn due(today: chrono::NaiveDate, settings: &ScheduleSettings) -> Vec<Command> {
    use chrono::Datelike;
    let mut out = Vec::new();
    for line in Line::BUSINESS {
        let this = YearMonth::new(today.year(), today.month()).ok();
        let assessed = match settings.assess_in {
            crate::domain::deadline::DeadlineMonth::SameMonth => this,
            crate::domain::deadline::DeadlineMonth::NextMonth => this.and_then(YearMonth::prev),
        };
        if today.day() >= settings.assess_day
            && let Some(prev) = assessed
        {
            let body = serde_json::json!({ "month": prev.to_string() });
            out.push(
                Command::new(line, contracts::collection::SERVICE, ASSESS_MONTH, &body)
                    .with_message_id(order_id(&format!("assess-month:{line}:{prev}"))),
            );
        }
        let body = serde_json::json!({ "as_of": today });
        out.push(
            Command::new(line, contracts::collection::SERVICE, DETECT_ARREARS, &body)
                .with_message_id(order_id(&format!("detect-arrears:{line}:{today}"))),
        );
    }
    out
}

/// Runs until `shutdown`, publishing what is due (a repeat within the day is absorbed by the
/// inbox, so checking often is harmless).
pub async fn run(broker: BrokerConfig, settings: ScheduleSettings, shutdown: CancellationToken) {
    if !settings.enabled {
        return;
    }
    let mut client: Option<CommandClient> = None;
    let mut last_sent: Option<chrono::NaiveDate> = None;
    loop {
        let today = crate::today();
        if last_sent != Some(today) {
            if client.is_none() {
                client = CommandClient::connect(broker.clone(), "collection-scheduler")
                    .await
                    .ok();
            }
            if let Some(c) = &client {
                let mut failed = false;
                for cmd in due(today, &settings) {
                    if let Err(e) = c.publish(&cmd).await {
                        tracing::warn!(error = %e, command = %cmd.routing_key(), "scheduled command not sent; will retry");
                        failed = true;
                        break;
                    }
                }
                if failed {
                    client = None;
                } else {
                    last_sent = Some(today);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(settings.check_every_secs.max(1))) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_previous_month_is_assessed_from_the_assess_day_with_a_stable_id() {
        let s = ScheduleSettings {
            assess_day: 3,
            assess_in: crate::domain::deadline::DeadlineMonth::NextMonth,
            ..Default::default()
        };
        let before = due("2024-04-02".parse().unwrap(), &s);
        assert!(before.iter().all(|c| c.name == "detect-arrears"));
        let on = due("2024-04-03".parse().unwrap(), &s);
        let assess: Vec<_> = on.iter().filter(|c| c.name == "assess-month").collect();
        assert_eq!(assess.len(), 2);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&assess[0].body).unwrap()["month"],
            "2024-03"
        );
        let again = due("2024-04-03".parse().unwrap(), &s);
        assert_eq!(on[0].message_id, again[0].message_id, "replicas send the same id");
        let jan = due("2024-01-05".parse().unwrap(), &s);
        assert!(
            jan.iter()
                .any(|c| String::from_utf8_lossy(&c.body).contains("2023-12"))
        );
    }

    #[test]
    fn a_region_paying_within_the_month_assesses_that_month() {
        // Wuhan: March 2022 is due by 03-24, so it is assessed in March (on the 1st here).
        let s = ScheduleSettings::default();
        let on = due("2022-03-01".parse().unwrap(), &s);
        let months: Vec<Value> = on
            .iter()
            .filter(|c| c.name == "assess-month")
            .map(|c| serde_json::from_slice::<Value>(&c.body).unwrap()["month"].clone())
            .collect();
        assert_eq!(months, vec![Value::from("2022-03"); 2], "one per line");
    }
}

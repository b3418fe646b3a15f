//! The notification service (DOMAIN.md §7): it reads the events of every service on both
//! lines and tells persons and employers what happened, by SMS over SMPP; it announces every
//! freeze order before it starts, when it starts and when it ends. Line `common`.
//!
//! - `templates`: the texts, data with versions.
//! - `handlers`: events → contacts and decided messages (in the consumer's transaction);
//!   the opt-out and listing commands.
//! - `benefits`: the benefits service's filings and social-line benefits (retirement,
//!   awards, the monthly payments).
//! - `announcements`: freeze orders → the three announcements, a throttled bulk send that
//!   resumes where it stopped.
//! - `sender`: queued messages → the provider, receipts → states; retries and backoff.
//! - `sms`: the provider interface and the SMPP 3.4 ESME.

pub mod announcements;
pub mod benefits;
pub mod handlers;
pub mod sender;
pub mod sms;
pub mod store;
pub mod templates;

use contracts::Line;
use messaging::runtime::{ServiceRuntime, ServiceSettings, ServiceSpec};
use messaging::topology::ServiceTopologySpec;
use serde::Deserialize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, Clone, Deserialize)]
pub struct NotifySettings {
    pub hotline_medical: String,
    pub hotline_social: String,
    pub signature_medical: String,
    pub signature_social: String,
    pub quiet_start_hour: u32,
    pub quiet_end_hour: u32,
    pub reminder_days_before: i64,
    pub announce_lead_hours: i64,
    pub announcement_batch: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub sms: sms::SmsSettings,
    pub notify: NotifySettings,
}

impl Settings {
    /// Loads `configuration/` of this crate (or `APP_CONFIG_DIR`).
    pub fn load() -> anyhow::Result<Self> {
        platform::config::load_service(env!("CARGO_MANIFEST_DIR"))
    }
}

/// The `sms` and `notify` sections of `configuration/base.yaml`: what a deployment gets
/// unless it overrides them, and where tests and benchmarks start from.
pub fn base_settings() -> (sms::SmsSettings, NotifySettings) {
    #[derive(Deserialize)]
    struct Sections {
        sms: sms::SmsSettings,
        notify: NotifySettings,
    }
    let s: Sections = config::Config::builder()
        .add_source(config::File::from_str(
            BASE_CONFIGURATION,
            config::FileFormat::Yaml,
        ))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("configuration/base.yaml has the sms and notify sections");
    (s.sms, s.notify)
}

/// What this service consumes and sends on the broker: the runtime declares it at start-up
/// and `insurancectl topology export` writes it for a deployment.
pub fn topology() -> ServiceTopologySpec {
    ServiceTopologySpec {
        service: contracts::notification::SERVICE,
        command_lines: vec![Line::Common],
        event_bindings: Line::ALL.iter().map(|&l| (l, handlers::bindings(l))).collect(),
        sends: vec![],
    }
}

/// `configuration/base.yaml`, built in: the queue settings (retry tiers, delivery limit) a
/// deployment's topology is exported with.
pub const BASE_CONFIGURATION: &str = include_str!("../configuration/base.yaml");

pub type Application = ServiceRuntime<handlers::NotificationHandler>;

/// Builds the service: schema, migrations, topology, ops port. Nothing consumes or sends yet.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    anyhow::ensure!(
        settings.sms.provider == "smpp",
        "sms.provider '{}' is not known; the one provider is 'smpp'",
        settings.sms.provider
    );
    let migrations =
        messaging::runtime::migrations(embedded::migrations::runner(), "notification_schema_history");
    let spec = ServiceSpec {
        topology: topology(),
        handler: handlers::NotificationHandler {
            templates: Arc::new(templates::Templates::built_in()),
            notify: settings.notify.clone(),
        },
        migrations,
    };
    ServiceRuntime::build(settings.service, spec).await
}

/// What runs beside the consumers: the SMPP session, the sender and the announcer, until
/// `shutdown`.
pub fn workers(
    app: &Application,
    sms: sms::SmsSettings,
    notify: NotifySettings,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + use<> {
    let pool = app.pool();
    let freeze = app.freeze();
    async move {
        let (receipts_tx, receipts_rx) = tokio::sync::mpsc::unbounded_channel();
        let provider = sms::smpp::SmppProvider::start(sms.clone(), receipts_tx, shutdown.clone());
        let sender = tokio::spawn(sender::run(
            pool.clone(),
            freeze.clone(),
            provider,
            receipts_rx,
            sms,
            shutdown.clone(),
        ));
        let announcer = tokio::spawn(announcements::run(pool, freeze, notify, shutdown));
        let _ = sender.await;
        let _ = announcer.await;
    }
}

/// Quiet hours: reminders are not sent between `start` and `end` o'clock, Beijing time.
pub mod quiet {
    use chrono::{DateTime, Days, NaiveTime, TimeZone, Timelike, Utc};

    /// `t`, or the end of the quiet hours it falls in.
    pub fn outside(t: DateTime<Utc>, start: u32, end: u32) -> DateTime<Utc> {
        let cst = contracts::freeze::cst();
        let local = t.with_timezone(&cst);
        let h = local.hour();
        let quiet = if start > end {
            h >= start || h < end
        } else {
            h >= start && h < end
        };
        if !quiet {
            return t;
        }
        let mut date = local.date_naive();
        if start > end && h >= start {
            date = date.checked_add_days(Days::new(1)).expect("a date");
        }
        let at = date.and_time(NaiveTime::from_hms_opt(end, 0, 0).expect("an hour"));
        cst.from_local_datetime(&at)
            .single()
            .expect("a fixed offset has no gaps")
            .with_timezone(&Utc)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_base_configuration_carries_the_wuhan_hotlines() {
            let (sms, notify) = crate::base_settings();
            assert_eq!(
                (notify.hotline_medical.as_str(), notify.hotline_social.as_str()),
                ("027-87812393", "027-12333")
            );
            assert_eq!(
                (sms.window, notify.quiet_start_hour, notify.quiet_end_hour),
                (50, 21, 8)
            );
        }

        fn cst(s: &str) -> DateTime<Utc> {
            DateTime::parse_from_rfc3339(s)
                .expect("a time")
                .with_timezone(&Utc)
        }

        #[test]
        fn reminders_wait_for_the_morning() {
            assert_eq!(
                outside(cst("2024-03-21T22:30:00+08:00"), 21, 8),
                cst("2024-03-22T08:00:00+08:00")
            );
            assert_eq!(
                outside(cst("2024-03-22T06:59:00+08:00"), 21, 8),
                cst("2024-03-22T08:00:00+08:00")
            );
            assert_eq!(
                outside(cst("2024-03-22T09:00:00+08:00"), 21, 8),
                cst("2024-03-22T09:00:00+08:00")
            );
            assert_eq!(
                outside(cst("2024-03-22T20:59:59+08:00"), 21, 8),
                cst("2024-03-22T20:59:59+08:00")
            );
            // A daytime quiet window (12-14) works the same way.
            assert_eq!(
                outside(cst("2024-03-22T12:30:00+08:00"), 12, 14),
                cst("2024-03-22T14:00:00+08:00")
            );
        }
    }
}

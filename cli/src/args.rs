//! The command line, as clap sees it. Everything here is pure parsing; `run` does the work.

use crate::subscriber::{PublishRule, subscriber_name, topic_pattern};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use uuid::Uuid;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub use crate::management::DEFAULT_API_URL;

/// Back-office and operator client for the insurance services: send commands and read their
/// replies, inspect and replay parking lots, watch queue depths.
///
/// Exit codes: 0 done (a command was answered `ok` or `deferred`); 2 the service answered
/// `rejected` or `suspended`; 1 anything else (bad arguments, invalid JSON, no reply, broker
/// unreachable, unroutable command, unknown queue).
#[derive(Debug, Parser)]
#[command(name = "insurancectl", version, max_term_width = 110)]
pub struct Cli {
    /// Broker URL (`amqp://user:pass@host:port/vhost` or `amqps://`).
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = DEFAULT_AMQP_URL,
        hide_env_values = true,
        global = true
    )]
    pub amqp_url: String,

    /// Prefix of every exchange and queue name (empty in production; `t…` in tests).
    #[arg(long, env = "INSURANCE_PREFIX", default_value = "", global = true)]
    pub prefix: String,

    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for a reply, and upper bound on any single broker operation.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        global = true
    )]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Send any command to `insurance.commands` and wait for its reply.
    Send(SendArgs),
    /// List, show and replay messages in a parking lot.
    #[command(subcommand)]
    Parked(ParkedCmd),
    /// Look at queues.
    #[command(subcommand)]
    Queues(QueuesCmd),
    /// Provision, show and remove external subscribers (the tax authority): their queue, their
    /// broker user and its permissions, through the RabbitMQ management API.
    Subscriber(SubscriberArgs),
    /// Outbox rows the relay quarantined after too many refusals: list them, retry them.
    /// Reads the service's own schema (the one place the CLI touches a database).
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Freeze orders on `insurance.control`: plan a timetable, send one order, lift, extend
    /// or cancel it, and ask every service where its lines stand. Every running service
    /// answers; a service that is down gets the order from its queue when it starts.
    Freeze(FreezeArgs),
    /// Receipts (收件回执) given for requests held during a freeze.
    #[command(subcommand)]
    Receipt(ReceiptCmd),
    /// What the notification service sent (SMS): to a person or employer, or a freeze
    /// order's announcements and how far their bulk send has come.
    #[command(subcommand)]
    Notifications(NotificationsCmd),
    /// The broker topology of a deployment (exchanges, queues, bindings, policy, users and
    /// their grants), from the services' own code. Needs no broker.
    #[command(subcommand)]
    Topology(TopologyCmd),
    /// The services' own accounts: one Postgres role per service, owning its schema and with
    /// no rights on any other, and one broker user per service with the grants of `topology
    /// export` (DESIGN.md §6). Run by the operator before the services start.
    #[command(subcommand)]
    Accounts(AccountsCmd),
}

#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Create or update each service's Postgres role and schema and its broker user (safe to
    /// run again). Passwords come from `<SERVICE>_DB_PASSWORD` and `<SERVICE>_MQ_PASSWORD`
    /// (e.g. `CARD_ISSUANCE_MQ_PASSWORD`) when set; an existing account keeps its own
    /// otherwise, and a new broker user without one is refused. `DATA_SHARING_MQ_PASSWORD`
    /// gives the user the services control the data-sharing shovels with (management API,
    /// `policymaker`). `--prefix` prefixes everything as the tests do (`t1.` gives the role
    /// `t1_enrollment` and the user `t1.enrollment`).
    Apply(AccountsApplyArgs),
}

#[derive(Debug, Args)]
pub struct AccountsApplyArgs {
    /// The database as its administrator (a role that may create roles and schemas).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Only the Postgres roles.
    #[arg(long, conflicts_with = "broker")]
    pub postgres: bool,
    /// Only the broker users (through the management API).
    #[arg(long)]
    pub broker: bool,
    /// Only these services (repeat); default: all five.
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Also the broker users of the simulators of outside parties (`bank-sim`,
    /// `institution-sim`: a local or docker-compose set-up only), passwords from
    /// `BANK_SIM_MQ_PASSWORD` and `INSTITUTION_SIM_MQ_PASSWORD`.
    #[arg(long, conflicts_with = "postgres")]
    pub simulators: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum TopologyCmd {
    /// Print (or write) the topology for a cluster or for docker-compose. `--prefix` applies
    /// to every name.
    Export {
        #[arg(long, value_enum)]
        format: TopologyFormat,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Load the definitions export (exchanges, the delivery-limit policy, every user's
    /// permissions and topic permissions) into the broker of --amqp-url through the management
    /// API, as docker-compose's `broker-init` does. The users must exist (`accounts apply
    /// --broker --simulators` first); nothing else is touched. Safe to run again.
    Apply {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopologyFormat {
    /// Messaging Topology Operator resources (k8s/base/topology.yaml).
    K8s,
    /// A RabbitMQ definitions file (deploy/compose/rabbitmq/definitions.json): users'
    /// permissions, topic permissions, exchanges, policies; the services declare the queues.
    Definitions,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCmd {
    /// Messages, newest first, with their state (queued, submitted, delivered, failed, ...).
    #[command(group(ArgGroup::new("whom").required(true).args(["person", "credit_code", "announcement"])))]
    List {
        /// A person's ID number.
        #[arg(long, value_name = "ID_NUMBER")]
        person: Option<String>,
        /// An employer's unified social credit code.
        #[arg(long, value_name = "CODE")]
        credit_code: Option<String>,
        /// A freeze order id: its three announcements and their progress.
        #[arg(long, value_name = "ORDER")]
        announcement: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// Send to one service only (default: every service).
    #[arg(long, value_name = "SERVICE", value_parser = routing_word, global = true)]
    pub to: Option<String>,
    #[command(subcommand)]
    pub command: FreezeCmd,
}

const TIME_HELP: &str = "Times are RFC 3339 with an offset (2021-12-14T17:30:00+08:00) or \
`YYYY-MM-DD HH:MM` in China Standard Time, as the agencies' notices write them (`24:00` is \
midnight at the end of that day).";

#[derive(Debug, Subcommand)]
pub enum FreezeCmd {
    /// Check a timetable file (YAML, `cutovers/*.yaml`), print its orders, and send every one
    /// of them (each applies at its own `starts_at`).
    Plan {
        file: PathBuf,
        /// Check and print only; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send one order.
    #[command(after_help = TIME_HELP)]
    Order(Box<OrderArgs>),
    /// Every order the services hold, with its state in each.
    List,
    /// One order, as each service holds it.
    Show { id: String },
    /// Thaw now: the order ends at once and the held requests are processed.
    Lift { id: String },
    /// Give an order a new planned end (also an end to an order "to be announced").
    #[command(after_help = TIME_HELP)]
    Extend {
        id: String,
        #[arg(long, value_parser = parse_time)]
        until: chrono::DateTime<chrono::FixedOffset>,
    },
    /// Withdraw an order: it never applies (or stops applying) and moves no deadline.
    Cancel { id: String },
    /// Each service's lines: mode, events paused, backlog and its oldest request, orders in
    /// force, and the service's clock.
    Status,
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    /// The order's id, chosen by the operator (sending it again changes nothing).
    #[arg(long)]
    pub id: String,
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// Lines in scope (comma-separated; default all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub lines: Vec<LineArg>,
    /// Services in scope (default all).
    #[arg(long, value_delimiter = ',', value_parser = routing_word)]
    pub services: Vec<String>,
    /// Channels in scope (default all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub channels: Vec<ChannelArg>,
    /// Command names or groups (registration, assessment, payment, settlement, card, query);
    /// default every command that changes something.
    #[arg(long, value_delimiter = ',')]
    pub operations: Vec<String>,
    /// Payer kinds in scope (employer, flexible, retiree, resident); default all.
    #[arg(long, value_delimiter = ',')]
    pub payer_kinds: Vec<String>,
    /// Default: now.
    #[arg(long, value_parser = parse_time)]
    pub starts_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Absent: to be announced (另行通知); lift or extend it later.
    #[arg(long, value_parser = parse_time)]
    pub ends_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[arg(long)]
    pub reason: String,
    /// Shown to the public: Chinese, with the line's hotline.
    #[arg(long, default_value = "")]
    pub announcement: String,
    /// What the order does to deadlines inside it.
    #[arg(long, value_enum, default_value_t = DeadlinesArg::Extend)]
    pub deadlines: DeadlinesArg,
    /// With `--deadlines move-to`: the period moved (`YYYY-MM`).
    #[arg(long, value_name = "YYYY-MM", required_if_eq("deadlines", "move-to"))]
    pub period: Option<String>,
    /// With `--deadlines move-to`: when the moved period opens.
    #[arg(long, value_parser = parse_time, required_if_eq("deadlines", "move-to"))]
    pub opens: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// With `--deadlines move-to`: when it closes.
    #[arg(long, value_parser = parse_time, required_if_eq("deadlines", "move-to"))]
    pub closes: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// The channel to use instead, for requests this order refuses.
    #[arg(long, value_enum)]
    pub redirect_to: Option<ChannelArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    IntakeOnly,
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeadlinesArg {
    Extend,
    MoveTo,
    None,
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCmd {
    /// A receipt: when the request came, which order held it, and, after the thaw, its
    /// outcome (the final reply).
    Show {
        /// The receipt id the `deferred` reply gave.
        id: String,
        /// Ask one service only (default: every service).
        #[arg(long, value_name = "SERVICE", value_parser = routing_word)]
        to: Option<String>,
    },
}

/// RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` in China Standard Time (`24:00` is the end of the day).
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let bad = || {
        format!(
            "'{s}' is not a time: write 2021-12-14T17:30:00+08:00 or '2021-12-14 17:30' (China Standard Time)"
        )
    };
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(bad)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
    let local = if time == "24:00" || time == "24:00:00" {
        date.succ_opt().ok_or_else(bad)?.and_time(NaiveTime::MIN)
    } else {
        let t = NaiveTime::parse_from_str(time, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
            .map_err(|_| bad())?;
        NaiveDateTime::new(date, t)
    };
    contracts::freeze::cst()
        .from_local_datetime(&local)
        .single()
        .ok_or_else(bad)
}

#[derive(Debug, Args)]
pub struct OutboxTarget {
    /// The service's database (`postgres://user@host:port/db`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The service's schema (`enrollment`, `collection`, ...).
    #[arg(long)]
    pub schema: String,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Table of the quarantined rows, oldest first.
    Failed {
        #[command(flatten)]
        target: OutboxTarget,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Give quarantined rows back to the relay with a fresh attempt count.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
    Retry {
        #[command(flatten)]
        target: OutboxTarget,
        /// One row, by the id `outbox failed` shows.
        #[arg(long)]
        id: Option<i64>,
        /// Every quarantined row.
        #[arg(long)]
        all: bool,
    },
}

const PROVISION_EXAMPLE: &str = r"Example (the tax authority):
  TAX_MQ_PASSWORD=... insurancectl subscriber provision tax-authority \
    --bind '*.collection.contribution-assessed' --bind '*.collection.arrears-detected' \
    --publish 'commands:^(medical|social)\.collection\.record-payment$' --password-env TAX_MQ_PASSWORD";

#[derive(Debug, Args)]
pub struct SubscriberArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: SubscriberCmd,
}

/// The RabbitMQ management API (AMQP cannot create users or set permissions).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Management API base URL (plain http).
    #[arg(long, env = "RABBITMQ_API_URL", default_value = DEFAULT_API_URL, global = true)]
    pub api_url: String,

    /// Management API user (an administrator); default: the user of the AMQP URL.
    #[arg(long, env = "RABBITMQ_API_USER", global = true)]
    pub api_user: Option<String>,

    /// Its password; default: the password of the AMQP URL. Prefer the environment variable:
    /// command lines are visible to other users of the machine.
    #[arg(long, env = "RABBITMQ_API_PASSWORD", hide_env_values = true, global = true)]
    pub api_password: Option<String>,
}

impl ApiArgs {
    /// The management API as these arguments say, by default as the user of the AMQP URL (an
    /// empty variable counts as not given).
    pub fn api(&self, cli: &Cli) -> anyhow::Result<crate::management::Api> {
        let target = crate::management::amqp_target(&cli.amqp_url)?;
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        crate::management::Api::new(
            &self.api_url,
            &given(&self.api_user).unwrap_or(target.user),
            &given(&self.api_password).unwrap_or(target.password),
            std::time::Duration::from_secs(cli.timeout),
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum SubscriberCmd {
    /// Create or update a subscriber: its queue `subscriber.<name>` bound to the given events,
    /// its broker user `<prefix><name>` (no tags), and permissions to consume that queue and
    /// publish only the given routing keys. Safe to run again.
    #[command(after_help = PROVISION_EXAMPLE)]
    Provision(ProvisionArgs),
    /// Queue depth, bindings, user and permissions of a subscriber.
    Show {
        #[arg(value_parser = subscriber_name)]
        name: String,
    },
    /// Delete a subscriber's user (closing its connections), permissions and queues.
    Remove {
        #[arg(value_parser = subscriber_name)]
        name: String,
        /// Delete the queues even when messages are still waiting in them (they are lost).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Subscriber name, one word (e.g. `tax-authority`).
    #[arg(value_parser = subscriber_name)]
    pub name: String,

    /// Events to receive: a topic pattern on the events exchange (repeat for more). Bindings
    /// of the queue that are not given here are removed.
    #[arg(long = "bind", value_name = "PATTERN", required = true, value_parser = topic_pattern)]
    pub bindings: Vec<String>,

    /// `<exchange>:<regex>`: may publish to that exchange (`commands` or `events`) with
    /// routing keys matching the regex, anchored as `^…$` (repeat for more). None: read only.
    #[arg(long = "publish", value_name = "EXCHANGE:REGEX", value_parser = clap::value_parser!(PublishRule))]
    pub publish: Vec<PublishRule>,

    /// Take the user's password from this environment variable. Without it a new user gets a
    /// generated password, printed once; an existing user keeps its password.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,

    /// Give an existing user a new generated password (printed once).
    #[arg(long, conflicts_with = "password_env")]
    pub rotate_password: bool,

    /// A new subscriber first receives the events that happened since this moment (RFC 3339,
    /// e.g. 2026-12-01T00:00:00+08:00), from the events archive, in their original order and
    /// each once, then the live ones. Only for a subscriber whose queue does not exist yet.
    #[arg(long, value_name = "TIME", value_parser = replay_time)]
    pub replay_from: Option<chrono::DateTime<chrono::Utc>>,

    /// How long `--replay-from` may wait for a line whose data sharing a freeze holds (its
    /// events reach the subscribers only at the thaw), in seconds; then nothing is changed.
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "replay_from")]
    pub replay_wait: u64,
}

/// `--replay-from`: an RFC 3339 moment, not in the future.
pub fn replay_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| {
            format!(
                "'{s}' is not an RFC 3339 time ({e}), e.g. 2026-12-01T00:00:00+08:00 or 2026-12-01T00:00:00Z"
            )
        })?
        .with_timezone(&chrono::Utc);
    if t > chrono::Utc::now() {
        return Err(format!(
            "'{s}' is in the future: nothing has happened since then yet"
        ));
    }
    Ok(t)
}

/// Where the body of a command comes from: at most one of `--body`, `--file`, `-`; `{}` when
/// none is given.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("body_source").args(["body", "file", "stdin"])))]
pub struct SendArgs {
    /// Business line: the first part of the routing key.
    #[arg(value_enum)]
    pub line: LineArg,

    /// Service that owns the command, e.g. `enrollment`.
    #[arg(value_parser = routing_word)]
    pub service: String,

    /// Command name, e.g. `enroll-person`.
    #[arg(value_parser = routing_word)]
    pub command: String,

    /// The body as JSON text.
    #[arg(long, value_name = "JSON")]
    pub body: Option<String>,

    /// Read the body from a file.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// `-` reads the body from standard input.
    #[arg(value_name = "-", value_parser = ["-"])]
    pub stdin: Option<String>,

    /// Send the body bytes as they are, without checking that they are JSON (to reproduce
    /// a malformed message).
    #[arg(long)]
    pub raw: bool,

    /// Idempotency key; repeat a command's id to get its stored reply again. Default: a new
    /// UUID v7.
    #[arg(long, value_name = "UUID")]
    pub message_id: Option<Uuid>,

    /// Channel the request arrived through (`x-channel` header).
    #[arg(long, value_enum, default_value_t = ChannelArg::Counter)]
    pub channel: ChannelArg,

    /// The person acting (`x-operator` header).
    #[arg(long, value_name = "NAME", env = "INSURANCE_OPERATOR")]
    pub operator: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ParkedCmd {
    /// Table of the parked messages of a queue (left in place).
    List {
        /// Queue whose parking lot to read, without prefix (`enrollment.medical.commands`),
        /// or the parking lot's full name.
        queue: String,
        /// Show at most this many messages.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Every header and the body of one parked message (left in place).
    Show {
        /// Queue whose parking lot to read (as for `list`).
        queue: String,
        /// The parked message's `message_id`.
        message_id: String,
    },
    /// Put parked messages back on the queue they were parked from (same message id, so the
    /// services' inboxes still deduplicate).
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("which").required(true).args(["message_id", "all"])),
    override_usage = "insurancectl parked replay <QUEUE> <MESSAGE_ID | --all>"
)]
pub struct ReplayArgs {
    /// Queue whose parking lot to replay (as for `list`).
    pub queue: String,
    /// Replay only the message(s) with this `message_id`.
    pub message_id: Option<String>,
    /// Replay every parked message of the queue.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueuesCmd {
    /// Number of ready messages in each queue (names without prefix, or full names).
    Depth {
        #[arg(required = true, value_name = "QUEUE")]
        queues: Vec<String>,
    },
}

/// One word of a routing key: a dot or a topic wildcard would address something else.
fn routing_word(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['.', '*', '#']) || s.chars().any(char::is_whitespace) {
        Err(format!(
            "'{s}' is not a single routing-key word (no dots, wildcards or spaces)"
        ))
    } else {
        Ok(s.to_owned())
    }
}

/// The lines of `contracts::Line`, as clap values (so `--help` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LineArg {
    Medical,
    Social,
    Common,
}

impl From<LineArg> for contracts::Line {
    fn from(l: LineArg) -> Self {
        match l {
            LineArg::Medical => contracts::Line::Medical,
            LineArg::Social => contracts::Line::Social,
            LineArg::Common => contracts::Line::Common,
        }
    }
}

/// The channels of `contracts::Channel`, as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    Online,
    Mobile,
    Kiosk,
    Counter,
    Bank,
    Tax,
    Institution,
    DataSharing,
}

impl From<ChannelArg> for contracts::Channel {
    fn from(c: ChannelArg) -> Self {
        use contracts::Channel as C;
        match c {
            ChannelArg::Online => C::Online,
            ChannelArg::Mobile => C::Mobile,
            ChannelArg::Kiosk => C::Kiosk,
            ChannelArg::Counter => C::Counter,
            ChannelArg::Bank => C::Bank,
            ChannelArg::Tax => C::Tax,
            ChannelArg::Institution => C::Institution,
            ChannelArg::DataSharing => C::DataSharing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("insurancectl").chain(args.iter().copied()))
    }

    #[test]
    fn freeze_times_are_read_as_the_notices_write_them() {
        let t = |s| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(t("2021-12-14 17:30"), "2021-12-14T17:30:00+08:00");
        assert_eq!(t("2021-12-14 24:00"), "2021-12-15T00:00:00+08:00");
        assert_eq!(t("2020-08-12T24:00"), "2020-08-13T00:00:00+08:00");
        assert_eq!(t("2021-12-14T09:30:00Z"), "2021-12-14T09:30:00+00:00");
        for bad in ["tomorrow", "2021-12-14", "2021-13-01 10:00", "2021-12-14 25:00"] {
            assert!(parse_time(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn freeze_order_takes_a_scope_and_refuses_a_move_without_dates() {
        let cli = parse(&[
            "freeze",
            "order",
            "--id",
            "m1",
            "--mode",
            "intake-only",
            "--lines",
            "medical",
            "--channels",
            "counter,online",
            "--operations",
            "registration",
            "--reason",
            "cutover",
            "--ends-at",
            "2021-12-31 23:00",
        ])
        .unwrap();
        let Cmd::Freeze(FreezeArgs {
            command: FreezeCmd::Order(o),
            to: None,
        }) = cli.command
        else {
            panic!("not freeze order")
        };
        assert_eq!(o.lines, [LineArg::Medical]);
        assert_eq!(o.channels, [ChannelArg::Counter, ChannelArg::Online]);
        assert_eq!(o.ends_at.unwrap().to_rfc3339(), "2021-12-31T23:00:00+08:00");
        assert!(o.starts_at.is_none());
        let moved = parse(&[
            "freeze",
            "order",
            "--id",
            "m2",
            "--mode",
            "suspended",
            "--reason",
            "r",
            "--deadlines",
            "move-to",
            "--period",
            "2020-07",
        ]);
        assert!(moved.is_err(), "move-to without --opens/--closes was accepted");
        assert!(
            parse(&["freeze", "extend", "m1"]).is_err(),
            "extend without --until"
        );
        let cli = parse(&["freeze", "--to", "collection", "status"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Freeze(FreezeArgs { to: Some(ref s), command: FreezeCmd::Status }) if s == "collection"
        ));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_parses_with_defaults() {
        let cli = parse(&["send", "medical", "enrollment", "enroll-person", "--body", "{}"]).unwrap();
        let url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
        assert_eq!(cli.amqp_url, url);
        assert_eq!(cli.timeout, 30);
        assert!(!cli.json);
        let Cmd::Send(s) = cli.command else {
            panic!("not send")
        };
        assert_eq!(s.line, LineArg::Medical);
        assert_eq!(s.service, "enrollment");
        assert_eq!(s.command, "enroll-person");
        assert_eq!(s.body.as_deref(), Some("{}"));
        assert_eq!(s.channel, ChannelArg::Counter);
        assert!(s.message_id.is_none() && !s.raw && s.stdin.is_none());
    }

    #[test]
    fn send_takes_every_option_and_global_flags_after_the_subcommand() {
        let id = "0192f0c1-7c3a-7d2e-8f00-0123456789ab";
        let cli = parse(&[
            "--prefix",
            "t1.",
            "send",
            "social",
            "collection",
            "record-payment",
            "-",
            "--message-id",
            id,
            "--channel",
            "data-sharing",
            "--operator",
            "wang.li",
            "--raw",
            "--json",
            "--timeout",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.prefix, "t1.");
        assert!(cli.json);
        assert_eq!(cli.timeout, 5);
        let Cmd::Send(s) = cli.command else {
            panic!("not send")
        };
        assert_eq!(s.stdin.as_deref(), Some("-"));
        assert_eq!(s.message_id.unwrap().to_string(), id);
        assert_eq!(s.channel, ChannelArg::DataSharing);
        assert_eq!(s.operator.as_deref(), Some("wang.li"));
        assert!(s.raw);
    }

    #[test]
    fn send_refuses_bad_values_and_two_body_sources() {
        for bad in [
            &["send", "dental", "enrollment", "x"][..],
            &["send", "medical", "enrollment", "x", "--channel", "fax"],
            &["send", "medical", "enrollment", "x", "--message-id", "not-a-uuid"],
            &[
                "send",
                "medical",
                "enrollment",
                "x",
                "--body",
                "{}",
                "--file",
                "b.json",
            ],
            &["send", "medical", "enrollment", "x", "--body", "{}", "-"],
            &["send", "medical", "enrollment", "x", "body.json"],
            &["send", "medical", "enrollment.x", "y"],
            &["send", "medical", "enrollment", "#"],
            &["send", "medical", "enrollment", ""],
            &["--timeout", "0", "queues", "depth", "q"],
            &["queues", "depth"],
            &["parked", "list", "q", "--limit", "0"],
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn replay_needs_an_id_or_all_but_not_both() {
        let err = parse(&["parked", "replay", "enrollment.medical.commands"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(parse(&["parked", "replay", "q", "id-1", "--all"]).is_err());

        let cli = parse(&["parked", "replay", "q", "--all"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Parked(ParkedCmd::Replay(ReplayArgs {
                all: true,
                message_id: None,
                ..
            }))
        ));
        let cli = parse(&["parked", "replay", "q", "id-1"]).unwrap();
        let Cmd::Parked(ParkedCmd::Replay(r)) = cli.command else {
            panic!("not replay")
        };
        assert_eq!(
            (r.queue.as_str(), r.message_id.as_deref(), r.all),
            ("q", Some("id-1"), false)
        );
    }

    #[test]
    fn parked_list_has_a_default_limit() {
        let cli = parse(&["parked", "list", "enrollment.medical.commands"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Parked(ParkedCmd::List { limit: 50, .. })
        ));
        let cli = parse(&["parked", "list", "q", "--limit", "3", "--json"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Cmd::Parked(ParkedCmd::List { limit: 3, .. })
        ));
    }

    #[test]
    fn subscriber_provision_takes_bindings_publish_rules_and_a_password_variable() {
        let cli = parse(&[
            "--prefix",
            "t1.",
            "subscriber",
            "provision",
            "tax-authority",
            "--bind",
            "*.collection.contribution-assessed",
            "--bind",
            "*.collection.arrears-detected",
            "--publish",
            r"commands:^(medical|social)\.collection\.record-payment$",
            "--password-env",
            "TAX_MQ_PASSWORD",
            "--api-url",
            "http://127.0.0.1:55674",
            "--api-user",
            "ops",
        ])
        .unwrap();
        assert_eq!(cli.prefix, "t1.");
        let Cmd::Subscriber(sub) = cli.command else {
            panic!("not subscriber")
        };
        assert_eq!(sub.api.api_url, "http://127.0.0.1:55674");
        assert_eq!(sub.api.api_user.as_deref(), Some("ops"));
        let SubscriberCmd::Provision(p) = sub.command else {
            panic!("not provision")
        };
        assert_eq!(p.name, "tax-authority");
        assert_eq!(
            p.bindings,
            [
                "*.collection.contribution-assessed",
                "*.collection.arrears-detected"
            ]
        );
        assert_eq!(
            p.publish,
            [PublishRule {
                exchange: crate::subscriber::PublishExchange::Commands,
                regex: r"^(medical|social)\.collection\.record-payment$".into(),
            }]
        );
        assert_eq!(p.password_env.as_deref(), Some("TAX_MQ_PASSWORD"));
        assert!(!p.rotate_password);
    }

    #[test]
    fn subscriber_api_options_have_defaults_and_go_before_or_after_the_subcommand() {
        let cli = parse(&["subscriber", "show", "tax-authority"]).unwrap();
        let Cmd::Subscriber(sub) = cli.command else {
            panic!("not subscriber")
        };
        let url = std::env::var("RABBITMQ_API_URL").unwrap_or_else(|_| DEFAULT_API_URL.into());
        assert_eq!(sub.api.api_url, url);
        assert!(matches!(sub.command, SubscriberCmd::Show { ref name } if name == "tax-authority"));

        let cli = parse(&[
            "subscriber",
            "--api-url",
            "http://a:1",
            "remove",
            "tax-authority",
            "--force",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Cmd::Subscriber(sub) = cli.command else {
            panic!("not subscriber")
        };
        assert_eq!(sub.api.api_url, "http://a:1");
        assert!(matches!(
            sub.command,
            SubscriberCmd::Remove { ref name, force: true } if name == "tax-authority"
        ));
        let cli = parse(&["subscriber", "remove", "x"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Subscriber(SubscriberArgs {
                command: SubscriberCmd::Remove { force: false, .. },
                ..
            })
        ));
    }

    #[test]
    fn replay_from_takes_an_rfc_3339_moment_in_any_offset() {
        let cli = parse(&[
            "subscriber",
            "provision",
            "pension-fund",
            "--bind",
            "#",
            "--replay-from",
            "2026-12-01T00:00:00+08:00",
        ])
        .unwrap();
        let Cmd::Subscriber(sub) = cli.command else {
            panic!("not subscriber")
        };
        let SubscriberCmd::Provision(p) = sub.command else {
            panic!("not provision")
        };
        assert_eq!(
            p.replay_from.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-30T16:00:00+00:00")
        );
        assert_eq!(p.replay_wait, 600);
        assert!(replay_time("2026-12-01").is_err());
        assert!(replay_time("2999-12-01T00:00:00Z").is_err());
    }

    #[test]
    fn subscriber_commands_refuse_what_would_grant_the_wrong_thing() {
        let ok = ["subscriber", "provision", "tax-authority", "--bind", "#"];
        assert!(parse(&ok).is_ok());
        for bad in [
            // No binding: a subscriber that receives nothing.
            &["subscriber", "provision", "tax-authority"][..],
            &["subscriber", "provision", "tax.authority", "--bind", "#"],
            &["subscriber", "provision", "tax-authority", "--bind", "a..b"],
            &[
                "subscriber",
                "provision",
                "tax-authority",
                "--bind",
                "#",
                "--publish",
                "commands:record-payment",
            ],
            &[
                "subscriber",
                "provision",
                "tax-authority",
                "--bind",
                "#",
                "--publish",
                "control:^all\\.freeze$",
            ],
            &[
                "subscriber",
                "provision",
                "tax-authority",
                "--bind",
                "#",
                "--publish",
                "^a$",
            ],
            &[
                "subscriber",
                "provision",
                "tax-authority",
                "--bind",
                "#",
                "--password-env",
                "V",
                "--rotate-password",
            ],
            &["subscriber", "show"],
            &["subscriber", "remove", "a b"],
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn clap_values_match_the_wire_names_of_the_contracts() {
        for v in LineArg::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(contracts::Line::from(*v).as_str(), name);
        }
        for v in ChannelArg::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(contracts::Channel::from(*v).as_str(), name);
        }
        assert_eq!(LineArg::value_variants().len(), contracts::Line::ALL.len());
    }
}

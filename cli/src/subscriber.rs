//! External subscribers (DESIGN.md §2, §6): what `subscriber provision` grants, worked out
//! without a broker, and how it is shown.
//!
//! A subscriber is an organisation outside the city back office (the tax authority) that
//! learns of events through its own queue `subscriber.<name>` and its own broker user
//! `<prefix><name>` (no tags). The user gets the least RabbitMQ lets it work with; each line
//! was found necessary, and each refusal checked, against a real broker
//! (`tests/subscriber_permissions.rs`):
//!
//! | permission | pattern | needed for |
//! |---|---|---|
//! | configure | `^amq\.gen-.*$` | `queue.declare` of its exclusive server-named reply queues |
//! | write | `^<commands exchange>$` (the exchanges of `--publish`; `^$` without) | `basic.publish` to that exchange |
//! | read | `^(<its queue>\|amq\.gen-.*)$` | `basic.consume`/`basic.get` on its queue and its reply queues |
//!
//! Not granted, because nothing it does needs it: write on its queues or on `amq.gen-*`
//! (consuming, acknowledging and receiving replies need none; `queue.bind` would need write on
//! the queue *and* read on the exchange, neither given), read on any exchange, configure on
//! its subscriber queue (a passive declare needs no permission; an active one is refused, so
//! the subscriber's client must declare passively or not at all). The default exchange is
//! checked as `amq.default`, which no write pattern here matches, so it cannot publish
//! straight into a queue. Topic permissions narrow the routing keys: the `--publish` regex on
//! its exchange, `^$` on every other shared exchange.

use messaging::Names;
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use std::fmt::Write as _;
use std::str::FromStr;

/// Length of a generated password (alphanumeric: about 143 bits).
pub const PASSWORD_LEN: usize = 24;

/// A new password for a subscriber user, from the thread-local CSPRNG (seeded by the OS).
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

/// A subscriber's name: one word, because it is the last part of `subscriber.<name>` and the
/// user name.
pub fn subscriber_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a subscriber name: letters, digits, '-' and '_' (at most 64, starting with a \
             letter or digit), e.g. tax-authority"
        ))
    }
}

/// A topic binding pattern: dot-separated words, each a word, `*` or `#`.
pub fn topic_pattern(s: &str) -> Result<String, String> {
    let word_ok = |w: &str| w == "*" || w == "#" || (!w.is_empty() && !w.contains(['*', '#']));
    if !s.is_empty() && !s.chars().any(char::is_whitespace) && s.split('.').all(word_ok) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a topic pattern (dot-separated words, each a word, '*' or '#'), e.g. \
             '*.collection.contribution-assessed'"
        ))
    }
}

/// Whether a topic binding `pattern` routes `key` (RabbitMQ's rules: words separated by dots,
/// `*` exactly one word, `#` zero or more).
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn words(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| words(rest, &k[i..])),
            Some((&"*", rest)) => !k.is_empty() && words(rest, &k[1..]),
            Some((w, rest)) => k.first() == Some(w) && words(rest, &k[1..]),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    words(&p, &k)
}

/// The shared exchanges a subscriber may be allowed to publish to, by logical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PublishExchange {
    Commands,
    Events,
}

impl PublishExchange {
    pub fn full_name(self, names: &Names) -> String {
        match self {
            PublishExchange::Commands => names.commands_exchange(),
            PublishExchange::Events => names.events_exchange(),
        }
    }
}

/// `--publish <exchange>:<regex>`: routing keys the user may publish with on that exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRule {
    pub exchange: PublishExchange,
    pub regex: String,
}

impl FromStr for PublishRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((ex, regex)) = s.split_once(':') else {
            return Err(format!(
                "'{s}' is not <exchange>:<routing-key-regex>, e.g. 'commands:^(medical|social)\\.collection\\.record-payment$'"
            ));
        };
        let exchange = match ex {
            "commands" => PublishExchange::Commands,
            "events" => PublishExchange::Events,
            "control" => {
                return Err(
                    "the control exchange carries operator orders (freezes); a subscriber may not publish there"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "unknown exchange '{other}' (use the logical name: commands or events)"
                ));
            }
        };
        check_anchored(regex)?;
        Ok(PublishRule {
            exchange,
            regex: regex.to_owned(),
        })
    }
}

/// RabbitMQ matches permission patterns anywhere in the name or key (an unanchored search),
/// so an unanchored rule would grant more than it says: `record-payment` also matches
/// `x.record-payment.anything`.
fn check_anchored(regex: &str) -> Result<(), String> {
    if regex.chars().any(char::is_control) {
        return Err("the routing-key regex contains control characters".into());
    }
    // A final `\$` is a literal dollar, not an anchor.
    let trailing_backslashes = regex[..regex.len().saturating_sub(1)]
        .chars()
        .rev()
        .take_while(|&c| c == '\\')
        .count();
    let anchored_end = regex.ends_with('$') && trailing_backslashes % 2 == 0;
    if regex.len() < 2 || !regex.starts_with('^') || !anchored_end {
        return Err(format!(
            "'{regex}' must be anchored as ^…$: RabbitMQ matches permission patterns anywhere in the \
             routing key, so an unanchored pattern grants more than it says"
        ));
    }
    Ok(())
}

use messaging::grants::SERVER_NAMED_ALT;
pub use messaging::grants::{NOTHING, Permissions, SERVER_NAMED, TopicPermission, regex_escape};

/// Everything `provision` sets up for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    pub user: String,
    pub queue: String,
    pub parking: String,
    pub retry: String,
    /// The exchange the subscriber's queue is bound to: the subscribers' exchange, which each
    /// line's data-sharing shovel feeds from its hold queue.
    pub bound_to: String,
    pub bindings: Vec<String>,
    pub permissions: Permissions,
    pub topic_permissions: Vec<TopicPermission>,
}

/// The broker user of subscriber `name`.
pub fn user_name(names: &Names, name: &str) -> String {
    format!("{}{name}", names.prefix())
}

/// The queues `provision` declares for `name` (work queue, parking lot, retry queue).
pub fn queues(names: &Names, name: &str) -> Vec<String> {
    messaging::topology::work_queue_names(
        &names.subscriber_queue(name),
        &messaging::topology::QueueSettings::default(),
    )
}

/// Where the live events of a subscriber provisioned with `--replay-from` wait for its intake
/// shovel (`crate::replay`).
pub fn intake_queue(names: &Names, name: &str) -> String {
    intake_queue_of(&names.subscriber_queue(name))
}

fn intake_queue_of(queue: &str) -> String {
    format!("{queue}.intake")
}

/// The exchange in front of a replayed subscriber's queue (bound to it with `#`): the replay and
/// the intake shovel publish there, keeping routing keys. Named as the queue.
pub fn own_exchange(names: &Names, name: &str) -> String {
    names.subscriber_queue(name)
}

/// The dynamic shovel from a replayed subscriber's intake queue to its exchange.
pub fn intake_shovel(names: &Names, name: &str) -> String {
    format!("{}subscriber-{name}-intake", names.prefix())
}

/// `^a$`, or `^(a|b)$` for several alternatives that are already escaped.
fn exactly_one_of(alternatives: &[String]) -> String {
    match alternatives {
        [] => NOTHING.to_owned(),
        [one] => format!("^{one}$"),
        many => format!("^({})$", many.join("|")),
    }
}

pub fn plan(names: &Names, name: &str, bindings: &[String], publish: &[PublishRule]) -> Plan {
    let queue = names.subscriber_queue(name);
    let (parking, retry) = (Names::parking(&queue), Names::retry(&queue));

    let mut targets: Vec<PublishExchange> = publish.iter().map(|r| r.exchange).collect();
    targets.sort();
    targets.dedup();
    let writable: Vec<String> = targets
        .iter()
        .map(|e| regex_escape(&e.full_name(names)))
        .collect();

    let permissions = Permissions {
        configure: SERVER_NAMED.to_owned(),
        write: exactly_one_of(&writable),
        read: exactly_one_of(&[regex_escape(&queue), SERVER_NAMED_ALT.to_owned()]),
    };

    // Every shared exchange gets a topic permission: one that exists for an exchange is what
    // makes RabbitMQ check routing keys there at all.
    let topic_permissions = [
        (names.commands_exchange(), Some(PublishExchange::Commands)),
        (names.events_exchange(), Some(PublishExchange::Events)),
        (names.control_exchange(), None),
    ]
    .into_iter()
    .map(|(exchange, logical)| {
        let rules: Vec<&str> = publish
            .iter()
            .filter(|r| Some(r.exchange) == logical)
            .map(|r| r.regex.as_str())
            .collect();
        TopicPermission {
            exchange,
            // Each rule is anchored, so a top-level alternation keeps them apart.
            write: if rules.is_empty() {
                NOTHING.to_owned()
            } else {
                rules.join("|")
            },
            read: NOTHING.to_owned(),
        }
    })
    .collect();

    let mut bindings = bindings.to_vec();
    bindings.sort();
    bindings.dedup();
    Plan {
        name: name.to_owned(),
        user: user_name(names, name),
        queue,
        parking,
        retry,
        bound_to: names.subscribers_exchange(),
        bindings,
        permissions,
        topic_permissions,
    }
}

/// What happened to the user in `provision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserChange {
    Created,
    /// An existing user got a new password (`--password-env` or `--rotate-password`).
    PasswordSet,
    /// An existing user kept its password.
    PasswordKept,
}

/// The outcome of `provision`, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    #[serde(flatten)]
    pub plan: Plan,
    pub vhost: String,
    pub user_change: UserChange,
    pub bindings_added: Vec<String>,
    pub bindings_removed: Vec<String>,
    /// Only when this run generated it: shown once, stored nowhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_password: Option<String>,
    /// What `--replay-from` gave before the live events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<crate::replay::Replayed>,
}

pub fn provisioned_text(p: &Provisioned) -> String {
    let plan = &p.plan;
    let mut out = String::new();
    let _ = writeln!(out, "subscriber {} provisioned", plan.name);
    let _ = writeln!(
        out,
        "  queue      {} (quorum, durable; parking lot {})",
        plan.queue, plan.parking
    );
    for (i, key) in plan.bindings.iter().enumerate() {
        let label = if i == 0 { "bindings" } else { "" };
        let mark = if p.bindings_added.contains(key) {
            "  (new)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {label:<10} {} {key}{mark}", plan.bound_to);
    }
    for key in &p.bindings_removed {
        let _ = writeln!(out, "  {:<10} {} {key}  (removed)", "", plan.bound_to);
    }
    if let Some(r) = &p.replayed {
        let span = match (&r.first, &r.last) {
            (Some(first), Some(last)) => format!(" (happened {first} to {last})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  replayed   {} event(s) since {} from the archive{span}, then {} that arrived meanwhile \
             ({} ms); the live ones follow through {}",
            r.from_archive,
            r.from.to_rfc3339(),
            r.while_catching_up,
            r.took_ms,
            intake_queue_of(&plan.queue)
        );
    }
    let user_note = match p.user_change {
        UserChange::Created => "created",
        UserChange::PasswordSet => "updated, new password",
        UserChange::PasswordKept => "updated, password kept",
    };
    let _ = writeln!(out, "  user       {} (no tags; {user_note})", plan.user);
    out.push_str(&permissions_text(&p.vhost, &plan.permissions));
    out.push_str(&topic_text(&plan.topic_permissions));
    let _ = writeln!(
        out,
        "  It may consume {} and its own server-named reply queues, and publish only the routing keys \
         above; it cannot declare, bind or delete anything else.",
        plan.queue
    );
    if let Some(pw) = &p.generated_password {
        let _ = writeln!(out, "password:    {pw}");
        let _ = writeln!(
            out,
            "  (generated; shown only this once and stored nowhere: hand it to the subscriber now. \
             --rotate-password makes a new one.)"
        );
    }
    out
}

pub fn permissions_text(vhost: &str, p: &Permissions) -> String {
    let mut out = String::new();
    let label = format!("vhost {vhost}");
    let _ = writeln!(out, "  {label:<10} configure {}", p.configure);
    let _ = writeln!(out, "  {:<10} write     {}", "", p.write);
    let _ = writeln!(out, "  {:<10} read      {}", "", p.read);
    out
}

pub fn topic_text(topics: &[TopicPermission]) -> String {
    let mut out = String::new();
    let width = topics.iter().map(|t| t.exchange.len()).max().unwrap_or(0);
    for (i, t) in topics.iter().enumerate() {
        let label = if i == 0 { "topics" } else { "" };
        let _ = writeln!(
            out,
            "  {label:<10} {:<width$}  write {}  read {}",
            t.exchange, t.write, t.read
        );
    }
    out
}

/// What `show` found; `None` where something is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub name: String,
    pub vhost: String,
    pub queue: String,
    pub queue_state: Option<QueueState>,
    pub parking: String,
    pub parking_messages: Option<u64>,
    /// `(exchange, routing key)`, of its queue and its intake queue.
    pub bindings: Vec<(String, String)>,
    /// Only for a subscriber provisioned with `--replay-from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intake: Option<Intake>,
    pub user: String,
    pub user_tags: Option<Vec<String>>,
    pub permissions: Option<Permissions>,
    pub topic_permissions: Vec<TopicPermission>,
}

/// The intake queue of a subscriber provisioned with a replay, and whether its shovel is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intake {
    pub queue: String,
    pub messages: u64,
    pub shovel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueState {
    pub messages: u64,
    pub ready: u64,
    pub unacknowledged: u64,
    pub consumers: u64,
    #[serde(rename = "type")]
    pub kind: String,
}

pub fn shown_text(s: &Shown) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "subscriber {}", s.name);
    match &s.queue_state {
        Some(q) => {
            let _ = writeln!(
                out,
                "  queue      {}: {} message(s) ({} ready, {} unacknowledged), {} consumer(s), {}",
                s.queue, q.messages, q.ready, q.unacknowledged, q.consumers, q.kind
            );
        }
        None => {
            let _ = writeln!(out, "  queue      {}: missing", s.queue);
        }
    }
    match s.parking_messages {
        Some(n) => {
            let _ = writeln!(out, "  parking    {}: {n} message(s)", s.parking);
        }
        None => {
            let _ = writeln!(out, "  parking    {}: missing", s.parking);
        }
    }
    if s.bindings.is_empty() {
        let _ = writeln!(out, "  bindings   none");
    }
    for (i, (exchange, key)) in s.bindings.iter().enumerate() {
        let label = if i == 0 { "bindings" } else { "" };
        let _ = writeln!(out, "  {label:<10} {exchange} {key}");
    }
    if let Some(i) = &s.intake {
        let shovel = if i.shovel {
            "its shovel forwards to the queue"
        } else {
            "its shovel is MISSING: run 'subscriber provision' again"
        };
        let _ = writeln!(
            out,
            "  intake     {}: {} message(s); {shovel}",
            i.queue, i.messages
        );
    }
    match &s.user_tags {
        None => {
            let _ = writeln!(out, "  user       {}: missing", s.user);
        }
        Some(tags) if tags.is_empty() => {
            let _ = writeln!(out, "  user       {} (no tags)", s.user);
        }
        Some(tags) => {
            let _ = writeln!(out, "  user       {} (tags: {})", s.user, tags.join(", "));
        }
    }
    match &s.permissions {
        Some(p) => out.push_str(&permissions_text(&s.vhost, p)),
        None if s.user_tags.is_some() => {
            let _ = writeln!(out, "  vhost {}    no permissions", s.vhost);
        }
        None => {}
    }
    if !s.topic_permissions.is_empty() {
        out.push_str(&topic_text(&s.topic_permissions));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tax_rules() -> Vec<PublishRule> {
        vec![
            "commands:^(medical|social)\\.collection\\.record-payment$"
                .parse()
                .unwrap(),
        ]
    }

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn escaping_makes_dots_and_every_metacharacter_literal() {
        assert_eq!(
            regex_escape("t1a2b.insurance.commands"),
            "t1a2b\\.insurance\\.commands"
        );
        // Outside a character class `-`, `/` and `#` mean nothing and stay as they are.
        assert_eq!(regex_escape("a-b_c/#"), "a-b_c/#");
        assert_eq!(
            regex_escape("x^$.|?*+()[]{}\\"),
            "x\\^\\$\\.\\|\\?\\*\\+\\(\\)\\[\\]\\{\\}\\\\"
        );
        assert_eq!(regex_escape(""), "");
    }

    #[test]
    fn the_tax_authority_gets_its_queue_its_reply_queues_and_payment_commands_only() {
        let names = Names::new("t0c1d.");
        let p = plan(
            &names,
            "tax-authority",
            &[
                "*.collection.contribution-assessed".into(),
                "*.collection.arrears-detected".into(),
                "*.collection.arrears-detected".into(),
            ],
            &tax_rules(),
        );
        assert_eq!(p.user, "t0c1d.tax-authority");
        assert_eq!(p.queue, "t0c1d.subscriber.tax-authority");
        assert_eq!(p.parking, "t0c1d.subscriber.tax-authority.parking");
        assert_eq!(p.bound_to, "t0c1d.insurance.subscribers");
        assert_eq!(
            p.bindings,
            [
                "*.collection.arrears-detected",
                "*.collection.contribution-assessed"
            ]
        );
        assert_eq!(
            p.permissions,
            Permissions {
                configure: "^amq\\.gen-.*$".into(),
                write: "^t0c1d\\.insurance\\.commands$".into(),
                read: "^(t0c1d\\.subscriber\\.tax-authority|amq\\.gen-.*)$".into(),
            }
        );
        assert_eq!(
            p.topic_permissions,
            [
                TopicPermission {
                    exchange: "t0c1d.insurance.commands".into(),
                    write: "^(medical|social)\\.collection\\.record-payment$".into(),
                    read: "^$".into(),
                },
                TopicPermission {
                    exchange: "t0c1d.insurance.events".into(),
                    write: "^$".into(),
                    read: "^$".into(),
                },
                TopicPermission {
                    exchange: "t0c1d.insurance.control".into(),
                    write: "^$".into(),
                    read: "^$".into(),
                },
            ]
        );
    }

    #[test]
    fn without_a_prefix_and_without_publish_rules_nothing_is_writable() {
        let p = plan(&Names::default(), "pension-fund", &["#".into()], &[]);
        assert_eq!(p.user, "pension-fund");
        assert_eq!(p.permissions.write, "^$");
        assert_eq!(p.permissions.read, "^(subscriber\\.pension-fund|amq\\.gen-.*)$");
        assert!(
            p.topic_permissions
                .iter()
                .all(|t| t.write == "^$" && t.read == "^$")
        );
    }

    #[test]
    fn several_rules_become_one_alternation_per_exchange() {
        let rules: Vec<PublishRule> = [
            "commands:^medical\\.collection\\.record-payment$",
            "events:^social\\.collection\\.payment-received$",
            "commands:^social\\.collection\\.record-payment$",
        ]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
        let p = plan(&Names::new("p."), "bank", &["#".into()], &rules);
        assert_eq!(
            p.permissions.write,
            "^(p\\.insurance\\.commands|p\\.insurance\\.events)$"
        );
        assert_eq!(
            p.topic_permissions[0].write,
            "^medical\\.collection\\.record-payment$|^social\\.collection\\.record-payment$"
        );
        assert_eq!(
            p.topic_permissions[1].write,
            "^social\\.collection\\.payment-received$"
        );
    }

    #[test]
    fn publish_rules_name_a_known_exchange_and_are_anchored() {
        let r: PublishRule = "commands:^a\\.b$".parse().unwrap();
        assert_eq!(r.exchange, PublishExchange::Commands);
        assert_eq!(r.regex, "^a\\.b$");
        // A colon inside the regex belongs to it.
        let r: PublishRule = "events:^a:b$".parse().unwrap();
        assert_eq!((r.exchange, r.regex.as_str()), (PublishExchange::Events, "^a:b$"));
        for bad in [
            "^a$",
            "control:^a$",
            "insurance.commands:^a$",
            "commands:a\\.b",
            "commands:^a\\.b",
            "commands:a\\.b$",
            "commands:^a\\$",
            "commands:^",
            "commands:",
        ] {
            assert!(bad.parse::<PublishRule>().is_err(), "accepted {bad:?}");
        }
        assert!("commands:^a\\\\$".parse::<PublishRule>().is_ok());
    }

    #[test]
    fn topic_patterns_match_as_the_broker_routes() {
        for (pattern, key, want) in [
            (
                "*.collection.contribution-assessed",
                "medical.collection.contribution-assessed",
                true,
            ),
            (
                "*.collection.contribution-assessed",
                "medical.collection.arrears-detected",
                false,
            ),
            (
                "*.collection.contribution-assessed",
                "collection.contribution-assessed",
                false,
            ),
            ("#", "social.enrollment.person-enrolled", true),
            ("medical.#", "medical", true),
            ("medical.#", "medical.enrollment.person-enrolled", true),
            ("medical.#", "social.enrollment.person-enrolled", false),
            ("#.person-enrolled", "social.enrollment.person-enrolled", true),
            ("a.#.d", "a.d", true),
            ("a.#.d", "a.b.c.d", true),
            ("a.#.d", "a.b.c", false),
            ("a.*", "a.b.c", false),
            ("a.b", "a.b", true),
            ("a.b", "a.bb", false),
        ] {
            assert_eq!(topic_matches(pattern, key), want, "{pattern} ~ {key}");
        }
    }

    #[test]
    fn names_and_patterns_are_checked() {
        for ok in ["tax-authority", "bank_1", "A2"] {
            assert_eq!(subscriber_name(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "tax.authority", "-x", "a b", "a*", &"x".repeat(65)] {
            assert!(subscriber_name(bad).is_err(), "accepted {bad:?}");
        }
        for ok in ["*.collection.contribution-assessed", "#", "medical.#", "a.*.c"] {
            assert!(topic_pattern(ok).is_ok(), "refused {ok:?}");
        }
        for bad in ["", "a..b", "a.b*", "a b", "#x", "."] {
            assert!(topic_pattern(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn the_summary_lists_every_grant_and_the_password_once() {
        let names = Names::new("t1.");
        let p = Provisioned {
            plan: plan(
                &names,
                "tax-authority",
                &["*.collection.contribution-assessed".into()],
                &tax_rules(),
            ),
            vhost: "/".into(),
            user_change: UserChange::Created,
            bindings_added: vec!["*.collection.contribution-assessed".into()],
            bindings_removed: vec!["#".into()],
            generated_password: Some("Xy3".into()),
            replayed: None,
        };
        let text = provisioned_text(&p);
        for want in [
            "subscriber tax-authority provisioned\n",
            "  queue      t1.subscriber.tax-authority (quorum, durable; parking lot t1.subscriber.tax-authority.parking)\n",
            "  bindings   t1.insurance.subscribers *.collection.contribution-assessed  (new)\n",
            "             t1.insurance.subscribers #  (removed)\n",
            "  user       t1.tax-authority (no tags; created)\n",
            "  vhost /    configure ^amq\\.gen-.*$\n",
            "             write     ^t1\\.insurance\\.commands$\n",
            "             read      ^(t1\\.subscriber\\.tax-authority|amq\\.gen-.*)$\n",
            "  topics     t1.insurance.commands  write ^(medical|social)\\.collection\\.record-payment$  read ^$\n",
            "             t1.insurance.events    write ^$  read ^$\n",
            "password:    Xy3\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(text.matches("Xy3").count(), 1);

        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["user"], "t1.tax-authority");
        assert_eq!(json["generated_password"], "Xy3");
        assert_eq!(json["permissions"]["configure"], "^amq\\.gen-.*$");
        let kept = Provisioned {
            generated_password: None,
            user_change: UserChange::PasswordKept,
            ..p
        };
        let json = serde_json::to_value(&kept).unwrap();
        assert!(json.get("generated_password").is_none());
        assert_eq!(json["user_change"], "password_kept");
        assert!(!provisioned_text(&kept).contains("password:"));
    }

    #[test]
    fn show_says_what_is_missing() {
        let s = Shown {
            name: "tax-authority".into(),
            vhost: "/".into(),
            queue: "subscriber.tax-authority".into(),
            queue_state: None,
            parking: "subscriber.tax-authority.parking".into(),
            parking_messages: None,
            bindings: vec![],
            intake: None,
            user: "tax-authority".into(),
            user_tags: Some(vec![]),
            permissions: None,
            topic_permissions: vec![],
        };
        let text = shown_text(&s);
        assert!(
            text.contains("  queue      subscriber.tax-authority: missing\n"),
            "{text}"
        );
        assert!(text.contains("  bindings   none\n"), "{text}");
        assert!(text.contains("  user       tax-authority (no tags)\n"), "{text}");
        assert!(text.contains("no permissions"), "{text}");
    }
}

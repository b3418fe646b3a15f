//! The broker topology of a deployment, built from the Rust code alone (issue 13 §2): each
//! service's `topology()` (what it consumes and sends, the same value its runtime declares
//! at start-up) and its built-in `configuration/base.yaml` (retry tiers, delivery limit),
//! with the queue arguments of `messaging::topology` (`work_queue_declarations`,
//! `archive_declaration`), plus the least-privilege grants of every service, of the
//! simulators (docker-compose only) and of the operators (cluster only).
//!
//! `insurancectl topology export --format k8s` writes `k8s/base/topology.yaml` (Messaging
//! Topology Operator resources), `--format definitions` writes
//! `deploy/compose/rabbitmq/definitions.json` (a RabbitMQ definitions file). The tests below
//! fail when either committed file differs from what the code exports; regenerate with
//! `UPDATE_TOPOLOGY=1 cargo test -p insurancectl --lib topology`.

mod definitions;
mod k8s;

use crate::Report;
use crate::args::{Cli, TopologyCmd, TopologyFormat};
use anyhow::{Context, bail};
use contracts::Line;
use messaging::Names;
use messaging::grants::{
    NOTHING, Permissions, SERVER_NAMED, SERVER_NAMED_ALT, TopicPermission, exactly, lines_group,
    regex_escape, topic,
};
use messaging::runtime::MessagingSettings;
use messaging::topology::{
    ARCHIVE_BINDING, QueueArgument, QueueDeclaration, QueueSettings, ServiceTopology, ServiceTopologySpec,
    archive_declaration, shared_exchanges, work_queue_declarations,
};

/// The RabbitmqCluster the resources belong to (`k8s/base/rabbitmq.yaml`).
pub const CLUSTER: &str = "insurance-broker";
pub const VHOST: &str = "/";
pub const DELIVERY_LIMIT_POLICY: &str = "insurance-delivery-limit";

/// A service as deployed: its topology, and the queue settings of its base configuration.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub spec: ServiceTopologySpec,
    pub queues: QueueSettings,
}

impl Deployed {
    pub fn new(spec: ServiceTopologySpec, base_configuration: &str) -> anyhow::Result<Self> {
        let settings = MessagingSettings::from_base_yaml(base_configuration)
            .with_context(|| format!("the configuration/base.yaml of {}", spec.service))?;
        Ok(Deployed {
            spec,
            queues: settings.queues(),
        })
    }
}

/// Every service of the suite, in the order the files list them.
pub fn services() -> anyhow::Result<Vec<Deployed>> {
    vec![
        Deployed::new(enrollment::topology(), enrollment::BASE_CONFIGURATION),
        Deployed::new(collection::topology(), collection::BASE_CONFIGURATION),
        Deployed::new(benefits::topology(), benefits::BASE_CONFIGURATION),
        Deployed::new(card_issuance::topology(), card_issuance::BASE_CONFIGURATION),
        Deployed::new(notification::topology(), notification::BASE_CONFIGURATION),
    ]
    .into_iter()
    .collect()
}

/// A queue as declared: its type (`quorum`, `stream`) and its other arguments in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub queue_type: String,
    pub arguments: Vec<(String, QueueArgument)>,
}

impl From<QueueDeclaration> for Queue {
    fn from(d: QueueDeclaration) -> Self {
        Queue {
            queue_type: d.queue_type().to_owned(),
            arguments: d
                .arguments
                .into_iter()
                .filter(|(k, _)| *k != "x-queue-type")
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            name: d.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Unique among the bindings: `<queue>-<key>` with `*` as `any` and `#` as `all`.
    pub id: String,
    pub source: String,
    pub destination: String,
    pub routing_key: String,
}

/// Queues and bindings, in the order the services declare them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    Queue(Queue),
    Binding(Binding),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub pattern: String,
    pub delivery_limit: i64,
}

/// Where a broker user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// On a cluster and in docker-compose (the services).
    Everywhere,
    /// On a cluster only (the operators).
    Cluster,
    /// In docker-compose only (the simulators of outside parties).
    Compose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Management tags (`policymaker` for the data-sharing user; none for the others).
    pub tags: Vec<&'static str>,
    pub permissions: Permissions,
    /// On the commands, events and control exchanges, in that order.
    pub topic_permissions: Vec<TopicPermission>,
    pub deployment: Deployment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchanges: Vec<String>,
    pub declared: Vec<Declared>,
    pub policies: Vec<Policy>,
    pub users: Vec<User>,
}

impl Topology {
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.declared.iter().filter_map(|d| match d {
            Declared::Queue(q) => Some(q),
            Declared::Binding(_) => None,
        })
    }

    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.declared.iter().filter_map(|d| match d {
            Declared::Binding(b) => Some(b),
            Declared::Queue(_) => None,
        })
    }

    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues().find(|q| q.name == name)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// The grants of a service's broker user `<prefix><service>` ([`messaging::grants`]).
fn service_user(names: &Names, spec: &ServiceTopologySpec) -> User {
    let g = messaging::grants::service_grants(names, spec);
    User {
        name: g.user,
        tags: vec![],
        permissions: g.permissions,
        topic_permissions: g.topic_permissions,
        deployment: Deployment::Everywhere,
    }
}

/// The operators' and simulators' users.
fn other_users(names: &Names, services: &[Deployed]) -> Vec<User> {
    let esc = |s: &str| regex_escape(s);
    let user = |name: &str| format!("{}{name}", names.prefix());
    let (commands, events) = (names.commands_exchange(), names.events_exchange());
    let none = |exchange: String| topic(exchange, NOTHING.into(), NOTHING.into());
    let card = esc(contracts::card::SERVICE);
    let bank_queue = esc(&names.subscriber_queue("bank"));
    let targets: Vec<String> = services.iter().map(|d| esc(d.spec.service)).collect();
    vec![
        // The cutover Job (`insurancectl freeze plan`) publishes freeze orders to the control
        // exchange (`<service|all>.freeze.<action>`), finds the running services with passive
        // declares of their control queues (no permission needed) and reads the answers on a
        // server-named reply queue.
        User {
            name: user("freeze-operator"),
            tags: vec![],
            permissions: Permissions {
                configure: SERVER_NAMED.into(),
                write: exactly(&[esc(&names.control_exchange()), SERVER_NAMED_ALT.into()]),
                read: SERVER_NAMED.into(),
            },
            topic_permissions: vec![
                none(commands.clone()),
                none(events.clone()),
                topic(
                    names.control_exchange(),
                    format!("^({}|all)\\.freeze\\.[a-z-]+$", targets.join("|")),
                    NOTHING.into(),
                ),
            ],
            deployment: Deployment::Cluster,
        },
        // simulators/bank: declares and consumes subscriber.bank (bound to the two card
        // requests it answers, to benefits' claim payment orders and to its social-line
        // benefit payment batches), answers card issuance
        // and benefits with commands. On a cluster the real
        // bank is provisioned with `insurancectl subscriber provision`.
        User {
            name: user("bank-sim"),
            tags: vec![],
            permissions: Permissions {
                configure: exactly(&[bank_queue.clone(), SERVER_NAMED_ALT.into()]),
                write: exactly(&[bank_queue.clone(), esc(&commands), SERVER_NAMED_ALT.into()]),
                read: exactly(&[bank_queue, esc(&events), SERVER_NAMED_ALT.into()]),
            },
            topic_permissions: vec![
                // Card issuance's answers, and the bank's results of a claim payment and of a
                // benefit payment batch.
                topic(
                    commands.clone(),
                    format!(
                        "^(common\\.{card}\\..+|medical\\.benefits\\.record-claim-payment|social\\.benefits\\.record-benefit-payments)$"
                    ),
                    NOTHING.into(),
                ),
                topic(
                    events.clone(),
                    NOTHING.into(),
                    format!(
                        "^(common\\.{card}\\.(bank-account-requested|card-production-requested)|medical\\.benefits\\.claim-payment-ordered|social\\.benefits\\.benefit-payment-batch-ordered)$"
                    ),
                ),
                none(names.control_exchange()),
            ],
            deployment: Deployment::Compose,
        },
        // The services' data-sharing reconcilers, on the management API: they put and remove
        // the lines' shovels (a parameter, hence `policymaker`), which move the hold queues
        // into the subscribers' exchange.
        User {
            name: user(messaging::grants::DATA_SHARING_USER),
            tags: vec!["policymaker"],
            permissions: messaging::grants::data_sharing_permissions(names),
            topic_permissions: Vec::new(),
            deployment: Deployment::Everywhere,
        },
        // simulators/institution: a hospital's day of settlement commands, replies only.
        User {
            name: user("institution-sim"),
            tags: vec![],
            permissions: Permissions {
                configure: SERVER_NAMED.into(),
                write: exactly(&[esc(&commands)]),
                read: SERVER_NAMED.into(),
            },
            topic_permissions: vec![
                topic(
                    commands,
                    format!("^medical\\.{}\\..+$", esc(contracts::benefits::SERVICE)),
                    NOTHING.into(),
                ),
                none(events),
                none(names.control_exchange()),
            ],
            deployment: Deployment::Compose,
        },
    ]
}

/// The topology of `services` under `names`.
pub fn build(names: &Names, services: &[Deployed]) -> anyhow::Result<Topology> {
    let Some(first) = services.first() else {
        bail!("a topology needs at least one service");
    };
    // Every service declares the archive; a second declaration with other arguments fails.
    if let Some(other) = services
        .iter()
        .find(|d| d.queues.archive_max_age != first.queues.archive_max_age)
    {
        bail!(
            "{} and {} declare the events archive with different archive_max_age ({} and {}): \
             the second would fail to start",
            first.spec.service,
            other.spec.service,
            first.queues.archive_max_age,
            other.queues.archive_max_age
        );
    }
    let archive = archive_declaration(names, &first.queues);
    let archive_binding = Binding {
        id: format!("{}-from-events", archive.name),
        source: names.events_exchange(),
        destination: archive.name.clone(),
        routing_key: ARCHIVE_BINDING.into(),
    };
    let mut declared = vec![
        Declared::Queue(archive.into()),
        Declared::Binding(archive_binding),
    ];
    for d in services {
        let topology = ServiceTopology::new(&d.spec, d.queues.clone());
        for q in topology.work_queues(names) {
            declared.extend(
                work_queue_declarations(&q.name, &d.queues)
                    .into_iter()
                    .map(|decl| Declared::Queue(decl.into())),
            );
            declared.extend(q.binding_keys.iter().map(|key| {
                Declared::Binding(Binding {
                    id: format!("{}-{}", q.name, key.replace('*', "any").replace('#', "all")),
                    source: q.exchange.clone(),
                    destination: q.name.clone(),
                    routing_key: key.clone(),
                })
            }));
        }
    }
    let service_names: Vec<String> = services.iter().map(|d| regex_escape(d.spec.service)).collect();
    let policies = vec![Policy {
        name: format!("{}{DELIVERY_LIMIT_POLICY}", names.prefix()),
        // Every service's work queues (not their parking lots or retry tiers).
        pattern: format!(
            "^{}({})\\.({}\\.(commands|events)|control)$",
            regex_escape(names.prefix()),
            service_names.join("|"),
            lines_group(&Line::ALL)
        ),
        // A guard: every work queue is declared with x-delivery-limit; for quorum queues the
        // lower of policy and argument applies, so the highest of the services' limits
        // changes nothing unless a queue was declared without it (RabbitMQ 3.10 has no
        // default).
        delivery_limit: services
            .iter()
            .map(|d| d.queues.delivery_limit)
            .max()
            .unwrap_or_default(),
    }];
    let mut users: Vec<User> = services.iter().map(|d| service_user(names, &d.spec)).collect();
    users.extend(other_users(names, services));
    Ok(Topology {
        exchanges: shared_exchanges(names),
        declared,
        policies,
        users,
    })
}

/// The file of `format`, as committed.
pub fn render(topology: &Topology, format: TopologyFormat) -> String {
    match format {
        TopologyFormat::K8s => k8s::render(topology),
        TopologyFormat::Definitions => definitions::render(topology),
    }
}

/// The whole suite's file of `format` under `names`.
pub fn export(names: &Names, format: TopologyFormat) -> anyhow::Result<String> {
    Ok(render(&build(names, &services()?)?, format))
}

pub async fn run(cli: &Cli, cmd: &TopologyCmd) -> anyhow::Result<Report> {
    let (format, out) = match cmd {
        TopologyCmd::Export { format, out } => (format, out),
        TopologyCmd::Apply { api } => return apply(cli, &api.api(cli)?).await,
    };
    let text = export(&Names::new(cli.prefix.clone()), *format)?;
    match out {
        None => Ok(Report::out(text)),
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            Ok(Report {
                stderr: format!("wrote {}\n", path.display()),
                ..Default::default()
            })
        }
    }
}

/// `topology apply`: the definitions export, imported through the management API.
async fn apply(cli: &Cli, api: &crate::management::Api) -> anyhow::Result<Report> {
    let text = export(&Names::new(cli.prefix.clone()), TopologyFormat::Definitions)?;
    let definitions: serde_json::Value = serde_json::from_str(&text).context("the definitions export")?;
    let count = |key: &str| definitions[key].as_array().map_or(0, Vec::len);
    let users: std::collections::BTreeSet<&str> = definitions["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["user"].as_str())
        .collect();
    // The broker refuses permissions of a user it does not know; say which, before anything.
    let known = api.user_names().await?;
    let missing: Vec<&str> = users.iter().copied().filter(|u| !known.contains(*u)).collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "no broker user {}: run 'insurancectl accounts apply --broker --simulators' first; nothing was changed",
            missing.join(", ")
        );
    }
    let summary = format!(
        "imported {} exchanges, {} policies, {} permissions and {} topic permissions for {} users\n",
        count("exchanges"),
        count("policies"),
        count("permissions"),
        count("topic_permissions"),
        users.len()
    );
    api.import_definitions(definitions)
        .await
        .with_context(|| format!("loading the definitions through {}", api.base()))?;
    Ok(Report::out(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    fn suite(prefix: &str) -> Topology {
        build(&Names::new(prefix), &services().unwrap()).unwrap()
    }

    fn int(v: i64) -> QueueArgument {
        QueueArgument::Int(v)
    }

    fn text(v: &str) -> QueueArgument {
        QueueArgument::Str(v.to_owned())
    }

    fn committed_file_matches(relative: &str, format: TopologyFormat) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(relative);
        let text = export(&Names::default(), format).unwrap();
        if std::env::var_os("UPDATE_TOPOLOGY").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{relative} drifted from the services' topology (each service's topology() and \
             configuration/base.yaml, messaging::topology); regenerate with \
             UPDATE_TOPOLOGY=1 cargo test -p insurancectl --lib topology"
        );
    }

    #[test]
    fn k8s_topology_does_not_drift() {
        committed_file_matches("k8s/base/topology.yaml", TopologyFormat::K8s);
    }

    #[test]
    fn compose_definitions_do_not_drift() {
        committed_file_matches(
            "deploy/compose/rabbitmq/definitions.json",
            TopologyFormat::Definitions,
        );
    }

    #[test]
    fn the_enrollment_command_queue_has_its_delivery_limit_parking_lot_and_retry_tiers() {
        let t = suite("");
        let q = t.queue("enrollment.medical.commands").expect("the queue");
        assert_eq!(q.queue_type, "quorum");
        assert_eq!(
            q.arguments,
            vec![
                ("x-delivery-limit".to_owned(), int(20)),
                ("x-dead-letter-exchange".to_owned(), text("")),
                (
                    "x-dead-letter-routing-key".to_owned(),
                    text("enrollment.medical.commands.parking")
                ),
                ("x-dead-letter-strategy".to_owned(), text("at-least-once")),
                ("x-overflow".to_owned(), text("reject-publish")),
            ]
        );
        let parking = t
            .queue("enrollment.medical.commands.parking")
            .expect("the parking lot");
        assert_eq!(
            (parking.queue_type.as_str(), parking.arguments.len()),
            ("quorum", 0)
        );
        for (label, ms) in [("1s", 1_000), ("10s", 10_000), ("1m", 60_000), ("10m", 600_000)] {
            let tier = t
                .queue(&format!("enrollment.medical.commands.retry.{label}"))
                .unwrap_or_else(|| panic!("the {label} tier"));
            assert_eq!(
                tier.arguments,
                vec![
                    ("x-message-ttl".to_owned(), int(ms)),
                    ("x-dead-letter-exchange".to_owned(), text("")),
                    (
                        "x-dead-letter-routing-key".to_owned(),
                        text("enrollment.medical.commands")
                    ),
                    ("x-dead-letter-strategy".to_owned(), text("at-least-once")),
                    ("x-overflow".to_owned(), text("reject-publish")),
                ],
                "{label}"
            );
        }
        let keys: Vec<&str> = t
            .bindings()
            .filter(|b| b.destination == "enrollment.medical.commands")
            .map(|b| b.routing_key.as_str())
            .collect();
        assert_eq!(keys, ["medical.enrollment.*"]);
        // Enrollment handles no common-line commands and consumes no events.
        assert!(t.queue("enrollment.common.commands").is_none());
        assert!(
            t.queues()
                .all(|q| !q.name.starts_with("enrollment.medical.events"))
        );
        let archive = t.queue("insurance.events.archive").expect("the archive");
        assert_eq!(
            (archive.queue_type.as_str(), &archive.arguments),
            ("stream", &vec![("x-max-age".to_owned(), text("7D"))])
        );
    }

    #[test]
    fn queue_settings_come_from_the_base_configuration() {
        let base = "region: x\nmessaging:\n  delivery_limit: 7\n  retry_tiers_ms: [500, 120000]\n";
        let d = Deployed::new(enrollment::topology(), base).unwrap();
        let t = build(&Names::default(), &[d]).unwrap();
        let q = t.queue("enrollment.social.commands").unwrap();
        assert_eq!(q.arguments[0], ("x-delivery-limit".to_owned(), int(7)));
        let tiers: Vec<&str> = t
            .queues()
            .map(|q| q.name.as_str())
            .filter(|n| n.starts_with("enrollment.social.commands.retry."))
            .collect();
        assert_eq!(
            tiers,
            [
                "enrollment.social.commands.retry.500ms",
                "enrollment.social.commands.retry.2m"
            ]
        );
        assert_eq!(t.policies[0].delivery_limit, 7);
        assert!(Deployed::new(enrollment::topology(), "messaging: [").is_err());
    }

    #[test]
    fn services_that_disagree_on_the_archive_are_refused() {
        let mut all = services().unwrap();
        all[3].queues.archive_max_age = "1D".into();
        let e = build(&Names::default(), &all).unwrap_err().to_string();
        assert!(e.contains("enrollment and card-issuance"), "{e}");
    }

    #[test]
    fn every_queue_a_service_declares_is_there_with_the_same_bindings() {
        let names = Names::default();
        let t = suite("");
        let mut expected_bindings = 1; // the archive's
        for d in services().unwrap() {
            let runtime = ServiceTopology::new(&d.spec, d.queues.clone());
            for q in runtime.work_queues(&names) {
                let bound: Vec<(&str, &str)> = t
                    .bindings()
                    .filter(|b| b.destination == q.name)
                    .map(|b| (b.source.as_str(), b.routing_key.as_str()))
                    .collect();
                let want: Vec<(&str, &str)> = q
                    .binding_keys
                    .iter()
                    .map(|k| (q.exchange.as_str(), k.as_str()))
                    .collect();
                assert_eq!(bound, want, "{}", q.name);
                expected_bindings += want.len();
            }
            // What a test tears down (computed on its own in messaging::topology) is declared.
            for owned in runtime.owned_queues(&names) {
                assert!(t.queue(&owned).is_some(), "{owned} of {}", d.spec.service);
            }
            assert!(t.user(d.spec.service).is_some(), "{}", d.spec.service);
        }
        assert_eq!(t.bindings().count(), expected_bindings);
        // Each queue is declared once, and every binding goes to a declared queue.
        let queues: BTreeSet<&str> = t.queues().map(|q| q.name.as_str()).collect();
        assert_eq!(queues.len(), t.queues().count());
        assert!(t.bindings().all(|b| queues.contains(b.destination.as_str())));
        assert!(t.bindings().all(|b| t.exchanges.contains(&b.source)));
        // The services' consumed queues, spot-checked against DESIGN.md.
        for q in [
            "collection.social.events",
            "benefits.common.events",
            "card-issuance.common.commands",
            "notification.common.events",
            // Social-line benefits (issue 10 §5): retirement, awards, the payment run.
            "benefits.social.commands",
            "benefits.social.events",
        ] {
            assert!(queues.contains(q), "{q}");
        }
    }

    #[test]
    fn kubernetes_names_are_unique_per_kind() {
        let t = suite("");
        let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut add = |kind: &'static str, name: String| {
            assert!(
                seen.entry(kind).or_default().insert(name.clone()),
                "{kind} {name} twice"
            );
        };
        for q in t.queues() {
            add("Queue", k8s::k8s_name(&q.name));
        }
        for b in t.bindings() {
            add("Binding", k8s::k8s_name(&b.id));
        }
        for u in &t.users {
            add("User", k8s::k8s_name(&u.name));
            for tp in &u.topic_permissions {
                add(
                    "TopicPermission",
                    k8s::k8s_name(&format!("{}-{}", u.name, tp.exchange)),
                );
            }
        }
    }

    #[test]
    fn a_prefix_is_applied_to_every_name() {
        let t = suite("t1.");
        assert!(!t.exchanges.is_empty());
        assert!(t.exchanges.iter().all(|e| e.starts_with("t1.insurance.")));
        assert!(t.queues().all(|q| q.name.starts_with("t1.")));
        assert!(
            t.bindings()
                .all(|b| b.source.starts_with("t1.") && b.destination.starts_with("t1."))
        );
        // Routing keys are not names: they stay as the services publish them.
        assert!(t.bindings().all(|b| !b.routing_key.starts_with("t1.")));
        for q in t.queues() {
            for (k, v) in &q.arguments {
                if let ("x-dead-letter-routing-key", QueueArgument::Str(target)) = (k.as_str(), v) {
                    assert!(target.starts_with("t1."), "{}: {target}", q.name);
                }
            }
        }
        assert!(t.policies.iter().all(|p| p.name.starts_with("t1.")));
        assert!(t.policies[0].pattern.starts_with("^t1\\.(enrollment|"));
        assert!(t.users.iter().all(|u| u.name.starts_with("t1.")));
        assert!(
            t.users
                .iter()
                .flat_map(|u| &u.topic_permissions)
                .all(|tp| tp.exchange.starts_with("t1.insurance."))
        );
        let enrollment = t.user("t1.enrollment").unwrap();
        assert!(enrollment.permissions.read.contains("|t1\\.enrollment\\..*|"));
        assert!(
            enrollment
                .permissions
                .configure
                .starts_with("^(t1\\.insurance\\.commands|")
        );
        let bank = t.user("t1.bank-sim").unwrap();
        assert!(
            bank.permissions
                .configure
                .starts_with("^(t1\\.subscriber\\.bank|")
        );
        // No name of the unprefixed suite is left in either file.
        let k8s = render(&t, TopologyFormat::K8s);
        let definitions = render(&t, TopologyFormat::Definitions);
        for line in k8s.lines().filter(|l| !l.starts_with('#')) {
            for field in ["  name: ", "  source: ", "  destination: ", "  exchange: "] {
                if let Some(v) = line.trim_start().strip_prefix(field.trim_start()) {
                    let ok = v.starts_with("t1") || v == CLUSTER || v == "insurance";
                    assert!(ok, "{line}");
                }
            }
        }
        assert!(!definitions.contains("\"insurance."), "{definitions}");
        assert!(!definitions.contains("\"enrollment\""), "{definitions}");
    }

    #[test]
    fn grants_follow_what_each_service_does() {
        let t = suite("");
        let collection = t.user("collection").unwrap();
        assert_eq!(
            collection.topic_permissions[0].write,
            "^(medical|social)\\.collection\\.(assess-month|detect-arrears)$"
        );
        // The schedule sends nothing its grants do not name.
        let spec = collection::topology();
        let granted: BTreeSet<String> = spec.sends.iter().flat_map(|s| s.routing_keys()).collect();
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let due = collection::schedule::due(day, &Default::default());
        assert!(!due.is_empty());
        for cmd in due {
            assert!(granted.contains(&cmd.routing_key()), "{}", cmd.routing_key());
        }
        // Services that send no commands of their own may send none.
        for s in ["enrollment", "benefits", "card-issuance", "notification"] {
            let u = t.user(s).unwrap();
            assert_eq!(u.topic_permissions[0].write, NOTHING, "{s}");
            assert_eq!(u.topic_permissions[2].read, format!("^({s}|all)\\.#$"));
            assert_eq!(u.deployment, Deployment::Everywhere);
        }
        let operator = t.user("freeze-operator").unwrap();
        assert_eq!(operator.deployment, Deployment::Cluster);
        assert_eq!(
            operator.topic_permissions[2].write,
            "^(enrollment|collection|benefits|card-issuance|notification|all)\\.freeze\\.[a-z-]+$"
        );
        for sim in ["bank-sim", "institution-sim"] {
            assert_eq!(t.user(sim).unwrap().deployment, Deployment::Compose);
        }
        let k8s = render(&t, TopologyFormat::K8s);
        let definitions = render(&t, TopologyFormat::Definitions);
        assert!(k8s.contains("name: freeze-operator-broker") && !k8s.contains("bank-sim"));
        assert!(definitions.contains("\"bank-sim\"") && !definitions.contains("freeze-operator"));
    }
}

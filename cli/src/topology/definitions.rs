//! `deploy/compose/rabbitmq/definitions.json`: a RabbitMQ definitions document for
//! `POST /api/definitions`, which `insurancectl topology apply` loads (`accounts apply
//! --broker --simulators` creates the users with their passwords first). Queues are left to the services, which declare them at start-up.

use super::{Deployment, Topology, VHOST};
use serde::Serialize;

#[derive(Serialize)]
struct Definitions<'a> {
    vhosts: Vec<Vhost>,
    permissions: Vec<Permission<'a>>,
    topic_permissions: Vec<TopicPermission<'a>>,
    exchanges: Vec<Exchange<'a>>,
    policies: Vec<Policy<'a>>,
}

#[derive(Serialize)]
struct Vhost {
    name: &'static str,
}

#[derive(Serialize)]
struct Permission<'a> {
    user: &'a str,
    vhost: &'static str,
    configure: &'a str,
    write: &'a str,
    read: &'a str,
}

#[derive(Serialize)]
struct TopicPermission<'a> {
    user: &'a str,
    vhost: &'static str,
    exchange: &'a str,
    write: &'a str,
    read: &'a str,
}

#[derive(Serialize)]
struct Exchange<'a> {
    name: &'a str,
    vhost: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    arguments: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Policy<'a> {
    name: &'a str,
    vhost: &'static str,
    pattern: &'a str,
    #[serde(rename = "apply-to")]
    apply_to: &'static str,
    priority: i64,
    definition: PolicyDefinition,
}

#[derive(Serialize)]
struct PolicyDefinition {
    #[serde(rename = "delivery-limit")]
    delivery_limit: i64,
}

pub fn render(t: &Topology) -> String {
    let users: Vec<_> = t
        .users
        .iter()
        .filter(|u| u.deployment != Deployment::Cluster)
        .collect();
    let doc = Definitions {
        vhosts: vec![Vhost { name: VHOST }],
        permissions: users
            .iter()
            .map(|u| Permission {
                user: &u.name,
                vhost: VHOST,
                configure: &u.permissions.configure,
                write: &u.permissions.write,
                read: &u.permissions.read,
            })
            .collect(),
        topic_permissions: users
            .iter()
            .flat_map(|u| {
                u.topic_permissions.iter().map(|tp| TopicPermission {
                    user: &u.name,
                    vhost: VHOST,
                    exchange: &tp.exchange,
                    write: &tp.write,
                    read: &tp.read,
                })
            })
            .collect(),
        exchanges: t
            .exchanges
            .iter()
            .map(|name| Exchange {
                name,
                vhost: VHOST,
                kind: "topic",
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: Default::default(),
            })
            .collect(),
        policies: t
            .policies
            .iter()
            .map(|p| Policy {
                name: &p.name,
                vhost: VHOST,
                pattern: &p.pattern,
                apply_to: "queues",
                priority: 0,
                definition: PolicyDefinition {
                    delivery_limit: p.delivery_limit,
                },
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("definitions serialize") + "\n"
}

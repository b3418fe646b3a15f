//! Least-privilege grants on the broker (issue 13 §1): the permissions and topic permissions
//! of each service's user, derived from what its runtime declares, publishes and consumes,
//! and of the management-API user the services control the data-sharing shovels with; and
//! how a user is put in place through the management API. The operator tooling
//! (`insurancectl accounts apply`, `topology export`) and the test harness use the same
//! functions, so tests run with the rights a deployment has.
//!
//! RabbitMQ matches permission patterns anywhere in a name (an unanchored search), so every
//! pattern here is anchored `^…$` and every name in it escaped.

use crate::management::{Api, kept_hash};
use crate::names::Names;
use crate::topology::{SentCommands, ServiceTopologySpec, shared_exchanges};
use anyhow::{Context, bail};
use contracts::Line;
use serde::Serialize;

/// `s` as a regex matching exactly `s` (Perl-compatible syntax, as RabbitMQ's `re`): the
/// prefix (`t1.`) and exchange names contain dots.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Matches nothing RabbitMQ checks (every resource name and the default exchange's
/// `amq.default` are non-empty); the empty routing key is never used by the suite.
pub const NOTHING: &str = "^$";

/// Server-named queues (`queue.declare` with an empty name): the reply queues.
pub const SERVER_NAMED: &str = "^amq\\.gen-.*$";
/// The same, unanchored, to go inside an alternation.
pub const SERVER_NAMED_ALT: &str = "amq\\.gen-.*";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicPermission {
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// A service's user and its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGrants {
    pub user: String,
    pub permissions: Permissions,
    /// On the commands, events and control exchanges, in that order.
    pub topic_permissions: Vec<TopicPermission>,
}

/// `a`, or `(a|b)` for several alternatives that are already escaped.
pub fn group(alternatives: &[String]) -> String {
    match alternatives {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// `^a$`, or `^(a|b)$`.
pub fn exactly(alternatives: &[String]) -> String {
    format!("^{}$", group(alternatives))
}

pub fn lines_group(lines: &[Line]) -> String {
    group(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
}

pub fn topic(exchange: String, write: String, read: String) -> TopicPermission {
    TopicPermission {
        exchange,
        write,
        read,
    }
}

/// The grants of a service's broker user `<prefix><service>`: what its runtime declares,
/// publishes and consumes (`ServiceTopologySpec`), and nothing else.
pub fn service_grants(names: &Names, spec: &ServiceTopologySpec) -> ServiceGrants {
    grants_for(names, spec.service, &spec.sends)
}

/// [`service_grants`] from the only two facts they depend on: the service's name and the
/// commands it sends itself.
pub fn grants_for(names: &Names, service_name: &str, sends: &[SentCommands]) -> ServiceGrants {
    let esc = |s: &str| regex_escape(s);
    let service = esc(service_name);
    let own = format!("{}\\..*", esc(&format!("{}{service_name}", names.prefix())));
    let (commands, events, control) = (
        esc(&names.commands_exchange()),
        esc(&names.events_exchange()),
        esc(&names.control_exchange()),
    );
    let archive = esc(&names.events_archive());
    let mut shared: Vec<String> = shared_exchanges(names).iter().map(|e| esc(e)).collect();
    shared.push(archive.clone());
    let permissions = Permissions {
        // Declares the shared exchanges and the archive (idempotent), its own queues, and
        // server-named reply queues (amq.gen-*) for the commands it sends.
        configure: exactly(&[shared.join("|"), own.clone(), SERVER_NAMED_ALT.into()]),
        // Publishes events and commands; binds its queues and the archive (queue.bind needs
        // write on the queue); replies, retries and parking go through the default exchange.
        write: exactly(&[
            commands.clone(),
            events.clone(),
            archive,
            own.clone(),
            "amq\\.default".into(),
            SERVER_NAMED_ALT.into(),
        ]),
        // Consumes its own queues; binding needs read on the source exchange.
        read: exactly(&[commands, events, control, own, SERVER_NAMED_ALT.into()]),
    };
    let sends: Vec<String> = sends
        .iter()
        .map(|s| {
            let commands: Vec<String> = s.commands.iter().map(|c| esc(c)).collect();
            format!(
                "^{}\\.{}\\.{}$",
                lines_group(&s.lines),
                esc(s.service),
                group(&commands)
            )
        })
        .collect();
    let lines = lines_group(&Line::ALL);
    // write: the routing keys it may publish; read: the binding keys it may use.
    let topic_permissions = vec![
        topic(
            names.commands_exchange(),
            if sends.is_empty() {
                NOTHING.into()
            } else {
                sends.join("|")
            },
            format!("^{lines}\\.{service}\\.\\*$"),
        ),
        topic(
            names.events_exchange(),
            format!("^{lines}\\.{service}\\..+$"),
            ".*".into(),
        ),
        topic(
            names.control_exchange(),
            NOTHING.into(),
            format!("^({service}|all)\\.#$"),
        ),
    ];
    ServiceGrants {
        user: format!("{}{service_name}", names.prefix()),
        permissions,
        topic_permissions,
    }
}

/// The management-API user every service's data-sharing reconciler uses (tag `policymaker`:
/// it puts and removes the lines' shovels): `<prefix>data-sharing`.
pub const DATA_SHARING_USER: &str = "data-sharing";

/// The grants of the data-sharing user: it reads each line's hold queue and writes to the
/// subscribers' exchange (what the shovels it declares do), and nothing else.
pub fn data_sharing_permissions(names: &Names) -> Permissions {
    let holds: Vec<String> = Line::BUSINESS
        .iter()
        .map(|l| regex_escape(&names.data_sharing_hold(*l)))
        .collect();
    Permissions {
        configure: NOTHING.into(),
        write: exactly(&[regex_escape(&names.subscribers_exchange())]),
        read: exactly(&holds),
    }
}

/// Creates or updates user `name` with `tags`: its password from `password` (an existing
/// user keeps its own without one; a new one is refused), then its topic permissions, then
/// its vhost permissions, so that it never holds write on an exchange without the
/// routing-key limit in place.
pub async fn put_user(
    api: &Api,
    vhost: &str,
    name: &str,
    password: Option<&str>,
    tags: &str,
    permissions: &Permissions,
    topic_permissions: &[TopicPermission],
) -> anyhow::Result<()> {
    match password {
        Some(pw) => api
            .put_user_with_password(name, pw, tags)
            .await
            .with_context(|| format!("creating or updating user {name}"))?,
        None => {
            let Some(existing) = api.user_info(name).await? else {
                bail!("a new broker user {name} needs a password");
            };
            // Keeps the password (its hash), sets the tags.
            api.put_user_with_hash(name, &kept_hash(&existing)?, tags)
                .await
                .with_context(|| format!("updating user {name}"))?
        }
    }
    for t in topic_permissions {
        api.put_topic_permissions(vhost, name, &t.exchange, &t.write, &t.read)
            .await
            .with_context(|| format!("topic permissions of {name} on {}", t.exchange))?;
    }
    api.put_permissions(
        vhost,
        name,
        &permissions.configure,
        &permissions.write,
        &permissions.read,
    )
    .await
    .with_context(|| format!("permissions of {name} on vhost {vhost}"))?;
    Ok(())
}

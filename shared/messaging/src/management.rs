//! The RabbitMQ management HTTP API, through `rabbitmq_http_client` (the Rust client of the
//! HTTP API kept by a RabbitMQ maintainer): AMQP cannot create users, set permissions or run
//! shovels, so the command-line client's `subscriber` and `accounts` commands, the services'
//! data-sharing hold (`freeze::data_sharing`) and the test harness go through it.
//!
//! [`Api`] is the project's face of that client: typed calls, a resource that is not there is
//! `None` (or `false` for a delete), and failures read as what the operator has to do (the
//! plugin not enabled, the wrong credentials, the broker's own reason). It talks plain HTTP
//! (no TLS stack is built in), with one time limit per call and no retries: the callers
//! decide what to try again.

use crate::grants::{Permissions, TopicPermission};
use anyhow::{Context, anyhow, bail};
use lapin::uri::AMQPUri;
use rabbitmq_http_client::api::{Client, HttpClientError};
use rabbitmq_http_client::requests::{self, RuntimeParameterDefinition, UserParams};
use rabbitmq_http_client::responses;
use serde_json::{Map, Value};
use std::str::FromStr;
use std::time::Duration;

pub use rabbitmq_http_client::responses::{BindingInfo, Connection, QueueInfo, User};

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:15672";

/// The shovel plugin's runtime-parameter component.
const SHOVEL: &str = "shovel";

/// What the tool takes from the AMQP URL: where the broker is, who we are, which vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpTarget {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub vhost: String,
}

/// Reads an AMQP URL the way lapin does when it connects (guest/guest and vhost `/` when
/// absent, percent-decoded), so the API is asked about the same vhost and user.
/// Of a cluster's node list (see [`crate::connect`]), the first node.
pub fn amqp_target(url: &str) -> anyhow::Result<AmqpTarget> {
    let url = crate::connect::node_urls(url)[0];
    let uri = AMQPUri::from_str(url).map_err(|e| anyhow!("the AMQP URL is not valid: {e}"))?;
    Ok(AmqpTarget {
        user: uri.authority.userinfo.username,
        password: uri.authority.userinfo.password,
        host: uri.authority.host,
        port: uri.authority.port,
        vhost: uri.vhost,
    })
}

/// The management API of one broker, as one user.
#[derive(Clone)]
pub struct Api {
    base: String,
    user: String,
    client: std::sync::Arc<Client<String, String, String>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn is_not_found(e: &HttpClientError) -> bool {
    match e {
        HttpClientError::NotFound => true,
        HttpClientError::ClientErrorResponse { status_code, .. } => status_code.as_u16() == 404,
        _ => false,
    }
}

impl Api {
    pub fn new(base: &str, user: &str, password: &str, timeout: Duration) -> anyhow::Result<Api> {
        let base = base.trim_end_matches('/').to_owned();
        if base.starts_with("https://") {
            bail!(
                "--api-url {base}: this build talks plain HTTP to the management API; use an http:// URL \
                 (e.g. through a local tunnel)"
            );
        }
        if !base.starts_with("http://") {
            bail!("--api-url {base}: expected http://host:port");
        }
        let client = rabbitmq_http_client::api::ClientBuilder::new()
            .with_endpoint(format!("{base}/api"))
            .with_basic_auth_credentials(user.to_owned(), password.to_owned())
            .with_connect_timeout(timeout)
            .with_request_timeout(timeout)
            .with_redirect_policy(reqwest_policy_none())
            .build()
            .map_err(|e| anyhow!("--api-url {base}: {e}"))?;
        Ok(Api {
            base,
            user: user.to_owned(),
            client: std::sync::Arc::new(client),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The error of a call, in the operator's terms: what was asked, and what to check.
    fn failed(&self, what: &str, e: HttpClientError) -> anyhow::Error {
        match &e {
            HttpClientError::RequestError { .. } => anyhow::Error::new(e).context(format!(
                "cannot reach the RabbitMQ management API at {} (is the rabbitmq_management plugin \
                 enabled? scripts/servers.sh enables it locally; check --api-url / RABBITMQ_API_URL)",
                self.base
            )),
            HttpClientError::ClientErrorResponse { status_code, .. } if status_code.as_u16() == 401 => {
                anyhow!(
                    "the management API at {} refused user '{}' (401): give --api-user/--api-password \
                 (RABBITMQ_API_USER/RABBITMQ_API_PASSWORD)",
                    self.base,
                    self.user
                )
            }
            HttpClientError::ClientErrorResponse {
                status_code,
                error_details,
                body,
                ..
            }
            | HttpClientError::ServerErrorResponse {
                status_code,
                error_details,
                body,
                ..
            } => {
                // The API explains itself in {"error": …, "reason": …}.
                let reason = error_details
                    .as_ref()
                    .and_then(|d| d.reason().map(str::to_owned))
                    .or_else(|| body.as_ref().map(|b| b.trim().chars().take(300).collect()))
                    .unwrap_or_default();
                anyhow!("management API: {what} answered {status_code}: {reason}")
            }
            _ => anyhow::Error::new(e).context(format!("management API: {what}")),
        }
    }

    fn check<T>(&self, what: impl FnOnce() -> String, r: Result<T, HttpClientError>) -> anyhow::Result<T> {
        r.map_err(|e| self.failed(&what(), e))
    }

    fn check_found<T>(
        &self,
        what: impl FnOnce() -> String,
        r: Result<T, HttpClientError>,
    ) -> anyhow::Result<Option<T>> {
        // `None` for a 404, the value otherwise.
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.failed(&what(), e)),
        }
    }

    // Users and their permissions.

    /// Every user's name.
    pub async fn user_names(&self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let r = self.client.list_users().await;
        Ok(self
            .check(|| "listing the users".to_owned(), r)?
            .into_iter()
            .map(|u| u.name)
            .collect())
    }

    pub async fn user_info(&self, name: &str) -> anyhow::Result<Option<User>> {
        let r = self.client.get_user(name).await;
        self.check_found(|| format!("reading user {name}"), r)
    }

    /// Creates or replaces user `name` with a new password (salted and hashed here, SHA-256,
    /// the broker's default scheme) and `tags` (comma-separated).
    pub async fn put_user_with_password(&self, name: &str, password: &str, tags: &str) -> anyhow::Result<()> {
        let salt = rabbitmq_http_client::password_hashing::salt();
        let hash = rabbitmq_http_client::password_hashing::base64_encoded_salted_password_hash_sha256(
            &salt, password,
        );
        self.put_user_with_hash(name, &hash, tags).await
    }

    /// Creates or replaces user `name` with a password hash as the API gives it back (SHA-256,
    /// the broker's default scheme).
    pub async fn put_user_with_hash(
        &self,
        name: &str,
        password_hash: &str,
        tags: &str,
    ) -> anyhow::Result<()> {
        let params = UserParams {
            name,
            password_hash,
            tags,
        };
        let r = self.client.create_user(&params).await;
        self.check(|| format!("putting user {name}"), r)
    }

    /// Deletes user `name`; `false` when it was not there.
    pub async fn delete_user(&self, name: &str) -> anyhow::Result<bool> {
        let r = self.client.delete_user(name, false).await;
        Ok(self.check_found(|| format!("deleting user {name}"), r)?.is_some())
    }

    pub async fn permissions(&self, vhost: &str, user: &str) -> anyhow::Result<Option<Permissions>> {
        let r = self.client.get_permissions(vhost, user).await;
        Ok(self
            .check_found(
                || format!("reading the permissions of {user} on vhost {vhost}"),
                r,
            )?
            .map(|p: responses::Permissions| Permissions {
                configure: p.configure,
                write: p.write,
                read: p.read,
            }))
    }

    pub async fn put_permissions(
        &self,
        vhost: &str,
        user: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> anyhow::Result<()> {
        let params = requests::Permissions {
            user,
            vhost,
            configure,
            read,
            write,
        };
        let r = self.client.declare_permissions(&params).await;
        self.check(|| format!("permissions of {user} on vhost {vhost}"), r)
    }

    /// Every exchange's topic permissions of `user` on `vhost` (none: empty).
    pub async fn topic_permissions(&self, vhost: &str, user: &str) -> anyhow::Result<Vec<TopicPermission>> {
        let r = self.client.list_topic_permissions_of(user).await;
        let all = self
            .check_found(|| format!("reading the topic permissions of {user}"), r)?
            .unwrap_or_default();
        Ok(all
            .into_iter()
            .filter(|t| t.vhost == vhost)
            .map(|t| TopicPermission {
                exchange: t.exchange,
                write: t.write,
                read: t.read,
            })
            .collect())
    }

    pub async fn put_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> anyhow::Result<()> {
        let params = requests::TopicPermissions {
            user,
            vhost,
            write,
            read,
            exchange,
        };
        let r = self.client.declare_topic_permissions(&params).await;
        self.check(|| format!("topic permissions of {user} on {exchange}"), r)
    }

    // Queues, exchanges, bindings, connections.

    pub async fn queue(&self, vhost: &str, name: &str) -> anyhow::Result<Option<QueueInfo>> {
        let r = self.client.get_queue_info(vhost, name).await;
        self.check_found(|| format!("reading queue {name}"), r)
    }

    pub async fn queue_exists(&self, vhost: &str, name: &str) -> anyhow::Result<bool> {
        Ok(self.queue(vhost, name).await?.is_some())
    }

    /// Deletes queue `name`; `false` when it was not there.
    pub async fn delete_queue(&self, vhost: &str, name: &str) -> anyhow::Result<bool> {
        let r = self.client.delete_queue(vhost, name, false).await;
        Ok(self
            .check_found(|| format!("deleting queue {name}"), r)?
            .is_some())
    }

    pub async fn exchange_exists(&self, vhost: &str, name: &str) -> anyhow::Result<bool> {
        let r = self.client.get_exchange_info(vhost, name).await;
        Ok(self
            .check_found(|| format!("reading exchange {name}"), r)?
            .is_some())
    }

    /// Deletes exchange `name`; `false` when it was not there.
    pub async fn delete_exchange(&self, vhost: &str, name: &str) -> anyhow::Result<bool> {
        let r = self.client.delete_exchange(vhost, name, false).await;
        Ok(self
            .check_found(|| format!("deleting exchange {name}"), r)?
            .is_some())
    }

    /// Every binding of `queue`, the default exchange's implicit one included (empty when
    /// the queue is not there).
    pub async fn queue_bindings(&self, vhost: &str, queue: &str) -> anyhow::Result<Vec<BindingInfo>> {
        let r = self.client.list_queue_bindings(vhost, queue).await;
        Ok(self
            .check_found(|| format!("listing the bindings of queue {queue}"), r)?
            .unwrap_or_default())
    }

    pub async fn connections_in(&self, vhost: &str) -> anyhow::Result<Vec<Connection>> {
        let r = self.client.list_connections_in(vhost).await;
        Ok(self
            .check_found(|| format!("listing the connections of vhost {vhost}"), r)?
            .unwrap_or_default())
    }

    /// Every queue of `vhost` with its message count (ready and unacknowledged).
    pub async fn queue_depths(&self, vhost: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let r = self.client.list_queues_in(vhost).await;
        Ok(self
            .check_found(|| format!("listing the queues of vhost {vhost}"), r)?
            .unwrap_or_default()
            .into_iter()
            .map(|q| (q.name, q.message_count))
            .collect())
    }

    /// Up to `count` messages at the head of `queue`, returned to it (`ack_requeue_true`):
    /// their properties (`message_id`, `headers`, …) as the API gives them.
    pub async fn peek(
        &self,
        vhost: &str,
        queue: &str,
        count: u32,
    ) -> anyhow::Result<Vec<serde_json::Map<String, Value>>> {
        let r = self
            .client
            .get_messages(vhost, queue, count, "ack_requeue_true")
            .await;
        Ok(self
            .check_found(|| format!("reading the messages of queue {queue}"), r)?
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.properties.0)
            .collect())
    }

    /// Closes connection `name`; `false` when it was already gone.
    pub async fn close_connection(&self, name: &str, reason: &str) -> anyhow::Result<bool> {
        let r = self.client.close_connection(name, Some(reason), false).await;
        Ok(self
            .check_found(|| format!("closing connection {name}"), r)?
            .is_some())
    }

    // Policies and definitions.

    pub async fn policy(&self, vhost: &str, name: &str) -> anyhow::Result<Option<responses::Policy>> {
        let r = self.client.get_policy(vhost, name).await;
        self.check_found(|| format!("reading policy {name}"), r)
    }

    /// Deletes policy `name`; `false` when it was not there.
    pub async fn delete_policy(&self, vhost: &str, name: &str) -> anyhow::Result<bool> {
        let r = self.client.delete_policy(vhost, name, false).await;
        Ok(self
            .check_found(|| format!("deleting policy {name}"), r)?
            .is_some())
    }

    /// Loads a definitions document (`POST /api/definitions`): what it names is created or
    /// updated, nothing else is touched.
    pub async fn import_definitions(&self, definitions: Value) -> anyhow::Result<()> {
        let r = self.client.import_definitions(definitions).await;
        self.check(|| "importing definitions".to_owned(), r)
    }

    // Shovels (dynamic shovels are runtime parameters of the `shovel` component).

    /// The definition of shovel `name`, or `None`.
    pub async fn shovel(&self, vhost: &str, name: &str) -> anyhow::Result<Option<Map<String, Value>>> {
        let r = self.client.get_runtime_parameter(SHOVEL, vhost, name).await;
        Ok(self
            .check_found(|| format!("reading shovel {name}"), r)?
            .map(|p| p.value.0))
    }

    /// Creates or replaces shovel `name` (a PUT of an existing shovel restarts it).
    pub async fn put_shovel(&self, vhost: &str, name: &str, definition: &Value) -> anyhow::Result<()> {
        let Some(value) = definition.as_object() else {
            bail!("shovel {name}: a definition is a JSON object, not {definition}");
        };
        let param = RuntimeParameterDefinition {
            name,
            vhost,
            component: SHOVEL,
            value: value.clone(),
        };
        let r = self.client.upsert_runtime_parameter(&param).await;
        self.check(|| format!("putting shovel {name}"), r)
    }

    /// Deletes shovel `name`; `false` when it was not there.
    pub async fn delete_shovel(&self, vhost: &str, name: &str) -> anyhow::Result<bool> {
        let r = self
            .client
            .clear_runtime_parameter(SHOVEL, vhost, name, false)
            .await;
        Ok(self
            .check_found(|| format!("deleting shovel {name}"), r)?
            .is_some())
    }
}

fn reqwest_policy_none() -> rabbitmq_http_client::api::RedirectPolicy {
    rabbitmq_http_client::api::RedirectPolicy::none()
}

/// A dynamic shovel on the broker it runs on: `src_queue` into `dest_exchange` of the same
/// vhost, keeping each message's routing key and properties, acknowledged at the source only
/// after the destination confirmed (`on-confirm`: nothing is lost if it is interrupted), never
/// deleting itself, reconnecting after a second.
pub fn local_shovel(vhost: &str, src_queue: &str, dest_exchange: &str) -> Value {
    // The broker itself, vhost percent-encoded as one path segment (`/` is `%2F`).
    let uri = format!("amqp:///{}", segment(vhost));
    serde_json::json!({
        "src-protocol": "amqp091",
        "src-uri": uri,
        "src-queue": src_queue,
        "dest-protocol": "amqp091",
        "dest-uri": uri,
        "dest-exchange": dest_exchange,
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": 1
    })
}

/// `s` percent-encoded as one URL path segment or userinfo part: everything but RFC 3986's
/// unreserved characters is encoded.
pub fn segment(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The password a user of `tags` keeps when it is put again without one: the hash the API
/// gave back, or an error saying why there is none.
pub fn kept_hash(user: &User) -> anyhow::Result<String> {
    user.password_hash
        .as_ref()
        .map(|h| h.to_string())
        .filter(|h| !h.is_empty())
        .with_context(|| format!("the management API gave no password hash of user {}", user.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_vhost_is_one_segment_of_a_shovel_uri() {
        let uri = |vhost| {
            local_shovel(vhost, "q", "x")["src-uri"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(uri("/"), "amqp:///%2F");
        assert_eq!(uri("insurance"), "amqp:///insurance");
        assert_eq!(uri("a b/c"), "amqp:///a%20b%2Fc");
        let s = local_shovel("/", "subscribers.medical.hold", "insurance.subscribers");
        assert_eq!(s["dest-uri"], s["src-uri"]);
        assert_eq!(s["src-queue"], "subscribers.medical.hold");
        assert_eq!(s["dest-exchange"], "insurance.subscribers");
        assert_eq!(s["ack-mode"], "on-confirm");
        assert_eq!(segment("v?x#y%"), "v%3Fx%23y%25");
        assert_eq!(segment("ops@city:é"), "ops%40city%3A%C3%A9");
    }

    #[test]
    fn the_amqp_url_gives_credentials_and_vhost_as_lapin_reads_them() {
        let t = amqp_target("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(
            t,
            AmqpTarget {
                user: "guest".into(),
                password: "guest".into(),
                host: "127.0.0.1".into(),
                port: 5672,
                vhost: "/".into(),
            }
        );
        let t = amqp_target("amqp://ops%40city:p%3Ass@mq.example/insurance").unwrap();
        assert_eq!(
            (t.user.as_str(), t.password.as_str(), t.vhost.as_str(), t.port),
            ("ops@city", "p:ss", "insurance", 5672)
        );
        let t = amqp_target("amqp://mq.example").unwrap();
        assert_eq!(
            (t.user.as_str(), t.password.as_str(), t.vhost.as_str()),
            ("guest", "guest", "/")
        );
        assert_eq!(amqp_target("amqps://h:5671/").unwrap().vhost, "");
        assert!(amqp_target("not a url").is_err());
    }

    #[test]
    fn only_plain_http_api_urls_are_taken() {
        let t = Duration::from_secs(1);
        assert!(Api::new("http://127.0.0.1:15672/", "guest", "guest", t).is_ok());
        assert_eq!(
            Api::new("http://127.0.0.1:15672/", "guest", "guest", t)
                .unwrap()
                .base(),
            "http://127.0.0.1:15672"
        );
        assert!(Api::new("https://mq.example", "u", "p", t).is_err());
        assert!(Api::new("127.0.0.1:15672", "u", "p", t).is_err());
    }

    #[test]
    fn a_user_without_a_hash_cannot_keep_its_password() {
        let u: User = serde_json::from_value(serde_json::json!({"name": "x", "tags": []})).unwrap();
        assert!(kept_hash(&u).is_err());
        let u: User =
            serde_json::from_value(serde_json::json!({"name": "x", "tags": [], "password_hash": "abc="}))
                .unwrap();
        assert_eq!(kept_hash(&u).unwrap(), "abc=");
    }
}

//! Test harness shared by every service's tests and the end-to-end tests.
//!
//! Each [`TestEnv`] has its own Postgres schemas (`t_<id>_<service>`) and its own broker name
//! prefix (`t<id>.`), so tests run in parallel against the same real servers, and it removes
//! both when dropped, even after a failed assertion. Servers come from `DATABASE_URL` and
//! `AMQP_URL` (what `make test` exports), defaulting to the local ones.
//!
//! Every reply [`send`] and [`send_command`] return and every event an [`EventTap`] hands
//! over is checked against its committed JSON Schema ([`contract`]); a body that does not
//! match panics the test. Tests that deliberately receive junk opt out with
//! [`EventTap::unchecked`].

pub mod contract;
pub mod machine;

pub mod probe;

pub mod reconcile;

pub mod services;

use contracts::ids::{CreditCode, IdNumber};
use contracts::{Line, Reply};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use messaging::broker::BrokerConfig;
use messaging::client::{ClientError, Command, CommandClient};
use messaging::grants::{Permissions, TopicPermission};
use messaging::runtime::{MessagingSettings, ServiceSettings};
use messaging::{Broker, Names};
use platform::db::DatabaseSettings;
use platform::ops::OpsSettings;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The broker's management API (`RABBITMQ_API_URL`, what `make test` exports).
pub fn api_url() -> String {
    std::env::var("RABBITMQ_API_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

/// How long tests wait for anything by default.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestEnv {
    pub id: String,
    schemas: Mutex<Vec<String>>,
    /// The Postgres roles made for this environment's services (one per schema).
    roles: Mutex<Vec<String>>,
    /// The broker users made for this environment's services (and the data-sharing one).
    users: Mutex<Vec<String>>,
    queues: Mutex<Vec<String>>,
    /// Dropped with the environment, which tells the watchdog that the test has ended.
    _watchdog: std::sync::mpsc::Sender<()>,
}

/// How long one test (one [`TestEnv`]) may run before its watchdog ends the test process:
/// `TEST_DEADLINE_SECS`, default 480. A test that hangs (a wait without a deadline, a server
/// that stopped answering) then fails the run with its name instead of using up CI's budget.
pub fn test_deadline() -> Duration {
    let secs = std::env::var("TEST_DEADLINE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(480);
    Duration::from_secs(secs)
}

/// Starts the watchdog of one test: when `deadline` passes before the returned sender is
/// dropped, it prints which test hung and exits the test binary with code 124.
fn watchdog(id: &str, deadline: Duration) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let id = id.to_owned();
    std::thread::Builder::new()
        .name(format!("watchdog-{id}"))
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(deadline) {
                eprintln!(
                    "\nWATCHDOG: test '{test}' (environment t{id}) still running after {deadline:?} \
                     (TEST_DEADLINE_SECS); ending the test process so the run fails instead of hanging"
                );
                std::process::exit(124);
            }
        })
        .expect("watchdog thread");
    tx
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        platform::telemetry::init_for_tests();
        let id = Uuid::now_v7().simple().to_string();
        // The random tail of a v7 id; the leading time bits are the same for parallel tests.
        let id = id[id.len() - 10..].to_owned();
        let watchdog = watchdog(&id, test_deadline());
        TestEnv {
            id,
            schemas: Mutex::default(),
            roles: Mutex::default(),
            users: Mutex::default(),
            queues: Mutex::default(),
            _watchdog: watchdog,
        }
    }

    pub fn prefix(&self) -> String {
        format!("t{}.", self.id)
    }

    pub fn names(&self) -> Names {
        Names::new(self.prefix())
    }

    pub fn schema(&self, service: &str) -> String {
        format!("t_{}_{}", self.id, service.replace('-', "_"))
    }

    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            url: amqp_url(),
            prefix: self.prefix(),
            timeout_ms: 10_000,
            tls: Default::default(),
        }
    }

    /// The Postgres role of `service` in this environment (named as its schema), made on
    /// first use as the operator tooling makes it: a login role owning that schema and
    /// nothing else, so that a test's service has no more rights than a deployed one.
    pub fn service_role(&self, service: &str) -> String {
        let role = self.schema(service);
        let mut roles = self.roles.lock().expect("lock");
        if !roles.contains(&role) {
            let (r, schema) = (role.clone(), role.clone());
            on_own_runtime(async move {
                let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
                    .await
                    .expect("the test database (DATABASE_URL) as its administrator");
                let driver = tokio::spawn(conn);
                platform::db::provision_role(&client, &r, &schema, None)
                    .await
                    .unwrap_or_else(|e| panic!("provisioning role {r}: {e:#}"));
                drop(client);
                let _ = driver.await;
            });
            roles.push(role.clone());
        }
        role
    }

    /// The password of this environment's broker user `user` (made up from its id: the
    /// users live as long as the environment).
    fn user_password(&self, user: &str) -> String {
        let alnum: String = user.chars().filter(char::is_ascii_alphanumeric).collect();
        format!("pw{alnum}{}", self.id)
    }

    /// Makes broker user `user` once per environment, with `tags` and grants.
    fn broker_user(&self, user: &str, tags: &str, permissions: &Permissions, topics: &[TopicPermission]) {
        let mut users = self.users.lock().expect("lock");
        if users.iter().any(|u| u == user) {
            return;
        }
        let (name, password) = (user.to_owned(), self.user_password(user));
        let (tags, permissions, topics) = (tags.to_owned(), permissions.clone(), topics.to_vec());
        on_own_runtime(async move {
            let t = messaging::management::amqp_target(&amqp_url()).expect("AMQP_URL");
            let api = messaging::management::Api::new(&api_url(), &t.user, &t.password, WAIT)
                .expect("the management API (RABBITMQ_API_URL)");
            messaging::grants::put_user(
                &api,
                &t.vhost,
                &name,
                Some(&password),
                &tags,
                &permissions,
                &topics,
            )
            .await
            .unwrap_or_else(|e| panic!("making broker user {name}: {e:#}"));
        });
        users.push(user.to_owned());
    }

    /// The broker URL of `service` in this environment: its own user `<prefix><service>`, made
    /// on first use with the grants a deployment gives it (`messaging::grants`). Tests grant
    /// no commands sent to itself (`sends`): no test runs collection's schedule, the one
    /// service that sends any.
    pub fn service_broker_url(&self, service: &str) -> String {
        let g = messaging::grants::grants_for(&self.names(), service, &[]);
        self.broker_user(&g.user, "", &g.permissions, &g.topic_permissions);
        url_as(&amqp_url(), &g.user, &self.user_password(&g.user))
    }

    /// The management-API user the services control the data-sharing shovels with, and its
    /// password.
    pub fn data_sharing_user(&self) -> (String, String) {
        let names = self.names();
        let user = format!("{}{}", names.prefix(), messaging::grants::DATA_SHARING_USER);
        self.broker_user(
            &user,
            "policymaker",
            &messaging::grants::data_sharing_permissions(&names),
            &[],
        );
        let password = self.user_password(&user);
        (user, password)
    }

    /// Settings for `service`: its own schema, Postgres role and broker user, this env's
    /// prefix, an ephemeral ops port, short retry delays.
    pub fn service_settings(&self, service: &str) -> ServiceSettings {
        let schema = self.schema(service);
        let role = self.service_role(service);
        let broker_url = self.service_broker_url(service);
        let (ds_user, ds_password) = self.data_sharing_user();
        self.schemas.lock().expect("lock").push(schema.clone());
        ServiceSettings {
            database: DatabaseSettings {
                url: database_url(),
                user: Some(role),
                password: None,
                schema,
                pool_size: 8,
                statement_timeout_ms: platform::db::DEFAULT_STATEMENT_TIMEOUT_MS,
                lock_timeout_ms: platform::db::DEFAULT_LOCK_TIMEOUT_MS,
                tls: Default::default(),
            },
            broker: BrokerConfig {
                url: broker_url,
                ..self.broker_config()
            },
            ops: OpsSettings {
                host: "127.0.0.1".into(),
                port: 0,
            },
            telemetry: Default::default(),
            messaging: MessagingSettings {
                retry_tiers_ms: vec![300, 600],
                handler_timeout_ms: 10_000,
                outbox_poll_ms: 200,
                drain_deadline_ms: 10_000,
                freeze: messaging::freeze::FreezeSettings {
                    data_sharing: messaging::freeze::data_sharing::DataSharingSettings {
                        api_url: Some(api_url()),
                        api_user: Some(ds_user),
                        api_password: Some(ds_password),
                        recheck_ms: Some(1_000),
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    /// Registers queues for teardown (a service's owned queues).
    pub fn track_queues(&self, queues: impl IntoIterator<Item = String>) {
        self.queues.lock().expect("lock").extend(queues);
    }

    pub async fn client(&self) -> CommandClient {
        CommandClient::connect(self.broker_config(), "test-client")
            .await
            .expect("client connects")
    }

    /// Consumers the broker counts on `queue` now.
    pub async fn consumer_count(&self, queue: &str) -> u32 {
        let broker = self.broker();
        let ch = broker.channel().await.expect("a channel");
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the queue exists");
        let _ = ch.close(200, "done".into()).await;
        broker.close().await;
        q.consumer_count()
    }

    /// A pool on `service`'s schema, for assertions on its tables.
    pub async fn pool(&self, service: &str) -> deadpool_postgres::Pool {
        let settings = DatabaseSettings {
            url: database_url(),
            user: None,
            password: None,
            schema: self.schema(service),
            pool_size: 2,
            statement_timeout_ms: platform::db::DEFAULT_STATEMENT_TIMEOUT_MS,
            lock_timeout_ms: platform::db::DEFAULT_LOCK_TIMEOUT_MS,
            tls: Default::default(),
        };
        platform::db::connect(&settings).await.expect("test pool")
    }

    pub fn broker(&self) -> Broker {
        Broker::new(self.broker_config(), "test")
    }

    /// A server-named, exclusive queue of the test's own (gone with its connection), declared
    /// with `args`, on a channel of its own: a requester's reply queue, a tap.
    pub async fn private_queue(&self, args: FieldTable) -> PrivateQueue {
        let broker = self.broker();
        let channel = broker.channel().await.expect("a channel");
        let opts = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let q = channel
            .queue_declare("".into(), opts, args)
            .await
            .expect("a private queue");
        PrivateQueue {
            name: q.name().to_string(),
            channel,
            broker,
        }
    }

    /// Subscribes to events matching `binding` (e.g. `medical.enrollment.*`, `#`).
    pub async fn tap(&self, binding: &str) -> EventTap {
        let q = self.private_queue(FieldTable::default()).await;
        q.bind(&self.names().events_exchange(), binding).await;
        let consumer = q.consume(false).await;
        EventTap {
            _queue: q,
            consumer,
            checked: true,
        }
    }
}

/// See [`TestEnv::private_queue`].
pub struct PrivateQueue {
    pub name: String,
    pub channel: lapin::Channel,
    pub broker: Broker,
}

impl PrivateQueue {
    /// Binds the queue to `exchange` with `binding`.
    pub async fn bind(&self, exchange: &str, binding: &str) {
        self.channel
            .queue_bind(
                self.name.as_str().into(),
                exchange.into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("a binding (declare the topology first)");
    }

    /// Consumes the queue, acknowledging automatically when `no_ack`.
    pub async fn consume(&self, no_ack: bool) -> lapin::Consumer {
        self.channel
            .basic_consume(
                self.name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("a consumer")
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
        self.broker.close().await;
    }
}

/// `url` (an AMQP URL) with another user and password, both percent-encoded.
pub fn url_as(url: &str, user: &str, password: &str) -> String {
    use messaging::management::segment;
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{}:{}@{host}", segment(user), segment(password))
}

/// Runs `fut` on a runtime of its own, on a thread of its own: for the harness's synchronous
/// calls, which may be made from inside a test's runtime.
fn on_own_runtime<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(fut)
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().expect("lock"));
        let roles = std::mem::take(&mut *self.roles.lock().expect("lock"));
        let users = std::mem::take(&mut *self.users.lock().expect("lock"));
        let mut queues = std::mem::take(&mut *self.queues.lock().expect("lock"));
        let names = self.names();
        queues.push(names.events_archive());
        queues.extend(contracts::Line::BUSINESS.map(|l| names.data_sharing_hold(l)));
        let exchanges = vec![
            names.commands_exchange(),
            names.events_exchange(),
            names.control_exchange(),
            names.subscribers_exchange(),
        ];
        let broker_config = self.broker_config();
        // Teardown runs on its own runtime so it also works while a test is unwinding.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&database_url(), tokio_postgres::NoTls).await
                {
                    let driver = tokio::spawn(conn);
                    // A test that panicked left its services' tasks frozen (this thread blocks
                    // the test's runtime), perhaps inside a transaction holding locks: give up
                    // on a schema rather than wait for them forever.
                    let _ = client.batch_execute("set lock_timeout = '5s'").await;
                    for s in &schemas {
                        let _ = client
                            .batch_execute(&format!("drop schema if exists {s} cascade"))
                            .await;
                    }
                    for r in &roles {
                        let _ = platform::db::drop_role(&client, r).await;
                    }
                    drop(client);
                    let _ = driver.await;
                }
                // The data-sharing shovels a provisioned subscriber left (before their queues).
                if let Ok(t) = messaging::management::amqp_target(&amqp_url())
                    && let Ok(api) = messaging::management::Api::new(
                        &api_url(),
                        &t.user,
                        &t.password,
                        Duration::from_secs(5),
                    )
                {
                    for line in contracts::Line::BUSINESS {
                        let _ = messaging::freeze::data_sharing::hold(&api, &names, line, &t.vhost).await;
                    }
                    for u in &users {
                        let _ = api.delete_user(u).await;
                    }
                }
                let broker = Broker::new(broker_config, "test-teardown");
                if let Ok(ch) = broker.channel().await {
                    let _ =
                        messaging::topology::delete(&ch, &queues, &exchanges, Duration::from_secs(10)).await;
                }
                broker.close().await;
            });
        });
        // A teardown that hangs (a server that stopped answering) must not hang the test.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _ = handle.join();
            let _ = done_tx.send(());
        });
        if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            eprintln!(
                "teardown of t{} did not finish within 60 s; leaving it behind",
                self.id
            );
        }
    }
}

/// Receives the events of one binding, each checked against the schema of its `type`.
pub struct EventTap {
    _queue: PrivateQueue,
    consumer: lapin::Consumer,
    checked: bool,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub routing_key: String,
    pub message_id: String,
    pub message_type: String,
    pub correlation_id: Option<String>,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: serde_json::Value,
}

impl EventTap {
    /// Stops checking bodies against their schemas: only for a test that publishes junk
    /// events on purpose and wants to see them.
    pub fn unchecked(mut self) -> Self {
        self.checked = false;
        self
    }

    /// The next event, or `None` after `wait`. Panics if its body does not match the
    /// committed schema of its `type` (unless [`EventTap::unchecked`]).
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        let d = tokio::time::timeout(wait, self.consumer.next())
            .await
            .ok()??
            .ok()?;
        let _ = d.acker.ack(BasicAckOptions::default()).await;
        let event = Event {
            routing_key: d.routing_key.to_string(),
            message_id: d
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            message_type: d
                .properties
                .kind()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            correlation_id: d.properties.correlation_id().as_ref().map(|s| s.to_string()),
            headers: messaging::envelope::headers_of(&d.properties),
            body: serde_json::from_slice(&d.data).unwrap_or(serde_json::Value::Null),
        };
        if self.checked {
            contract::assert_ok(
                contract::check_event(&event.message_type, &event.body),
                &format!("event {} ({})", event.routing_key, event.message_type),
                &String::from_utf8_lossy(&d.data),
            );
        }
        Some(event)
    }

    /// Collects events until `n` have arrived or `wait` has passed.
    pub async fn collect(&mut self, n: usize, wait: Duration) -> Vec<Event> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }

    /// Collects `n` events with `routing_key` (skipping others), or panics after [`WAIT`].
    pub async fn expect_n(&mut self, routing_key: &str, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.expect(routing_key).await);
        }
        out
    }

    /// Waits for the first event with `routing_key`, skipping others.
    pub async fn expect(&mut self, routing_key: &str) -> Event {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(e) if e.routing_key == routing_key => return e,
                Some(_) => continue,
                None => panic!("no {routing_key} event within {WAIT:?}"),
            }
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `wait` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, wait: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        // A check that itself hangs (a server that stopped answering) is cut at the deadline.
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
        let checked = tokio::time::timeout(left, check()).await;
        if let Ok(Some(v)) = checked {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {wait:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a command and waits for its reply; panics if the reply does not match `reply.json`
/// or, when `ok`, its result does not match `<service>.<name>.result.json`.
pub async fn send(
    client: &CommandClient,
    line: Line,
    service: &str,
    name: &str,
    body: serde_json::Value,
) -> Reply {
    send_command(client, &Command::new(line, service, name, &body), WAIT)
        .await
        .expect("a reply")
}

/// Sends a prepared command (own message id, channel, raw body) and waits up to `wait`;
/// a reply that arrives is checked against its schemas as in [`send`].
pub async fn send_command(
    client: &CommandClient,
    cmd: &Command,
    wait: Duration,
) -> Result<Reply, ClientError> {
    let reply = client.send(cmd, wait).await?;
    contract::assert_ok(
        contract::check_reply(&cmd.service, &cmd.name, &reply),
        &format!("the reply to {}", cmd.routing_key()),
        &reply,
    );
    Ok(reply)
}

/// A valid ID number of region 420102 (Wuhan Jiang'an district) born on `birth`
/// (`YYYY-MM-DD`), the gender digit odd (male) or even; `seq` tells apart persons born on the
/// same day (modulo 500).
pub fn id_born(birth: &str, seq: u32, male: bool) -> String {
    let seq = seq * 2 + u32::from(male);
    let body = format!("420102{}{:03}", birth.replace('-', ""), seq % 1000);
    "0123456789X"
        .chars()
        .map(|c| format!("{body}{c}"))
        .find(|c| IdNumber::parse(c).is_ok())
        .expect("a check character fits")
}

/// A valid resident ID number, distinct for every `n` below 24 million (born by 2026; region 420102,
/// Wuhan Jiang'an district; birth dates from 1960).
pub fn id_number(n: u32) -> String {
    let birth =
        chrono::NaiveDate::from_ymd_opt(1960, 1, 1).expect("date") + chrono::Days::new(u64::from(n / 1000));
    let body = format!("420102{}{:03}", birth.format("%Y%m%d"), n % 1000);
    "0123456789X"
        .chars()
        .map(|c| format!("{body}{c}"))
        .find(|candidate| IdNumber::parse(candidate).is_ok())
        .expect("one check character fits")
}

/// A valid unified social credit code, distinct for every `n` (`91` company, region 420100).
pub fn credit_code(n: u32) -> String {
    let body = format!("91420100{:09}", n);
    "0123456789ABCDEFGHJKLMNPQRTUWXY"
        .chars()
        .map(|c| format!("{body}{c}"))
        .find(|candidate| CreditCode::parse(candidate).is_ok())
        .expect("one check character fits")
}

/// A valid mobile number, distinct for every `n`.
pub fn phone(n: u32) -> String {
    format!("139{:08}", n % 100_000_000)
}

/// `enroll-person` for test person `n` as a flexible worker from `effective_month`: employee
/// medical on the medical line, pension on the social line.
pub fn enroll_flexible(n: u32, line: contracts::Line, effective_month: &str) -> messaging::client::Command {
    let types = if line == contracts::Line::Medical {
        serde_json::json!(["employee_medical"])
    } else {
        serde_json::json!(["pension"])
    };
    messaging::client::Command::new(
        line,
        "enrollment",
        "enroll-person",
        &serde_json::json!({
            "id_number": id_number(n), "name": format!("参保人{n}"), "phone": phone(n),
            "category": "flexible", "insurance_types": types, "effective_month": effective_month
        }),
    )
}

/// A TCP proxy in front of a real server whose connections a test can cut, to prove that
/// services survive a broker or database outage and resume by themselves.
pub struct CuttableProxy {
    pub port: u16,
    live: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    /// While set, new connections are accepted and dropped at once: the server is "down".
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    /// Proxies `url`'s `host:port`; returns the proxy and `url` rewritten to go through it.
    pub async fn in_front_of(url: &str) -> (CuttableProxy, String) {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (userinfo, hostpath) = rest.rsplit_once('@').map_or(("", rest), |(u, h)| (u, h));
        let (authority, path) = hostpath.split_once('/').map_or((hostpath, ""), |(a, p)| (a, p));
        let target = authority.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let port = listener.local_addr().expect("address").port();
        let live: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let tracked = live.clone();
        let down: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
        let refusing = down.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refusing.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().expect("lock").push(task.abort_handle());
            }
        });
        let at = if userinfo.is_empty() {
            String::new()
        } else {
            format!("{userinfo}@")
        };
        let proxied = format!("{scheme}://{at}127.0.0.1:{port}/{path}");
        (
            CuttableProxy {
                port,
                live,
                down,
                acceptor,
            },
            proxied,
        )
    }

    /// Takes the server away: every open connection is cut and new ones are refused until
    /// [`CuttableProxy::bring_up`]. Returns how many connections were cut.
    pub fn take_down(&self) -> usize {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut()
    }

    pub fn bring_up(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops every open connection (new ones are accepted again).
    pub fn cut(&self) -> usize {
        let handles = std::mem::take(&mut *self.live.lock().expect("lock"));
        let n = handles.iter().filter(|h| !h.is_finished()).count();
        handles.iter().for_each(tokio::task::AbortHandle::abort);
        n
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.acceptor.abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_identifiers_are_valid_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..3000).map(super::id_number).collect();
        assert_eq!(ids.len(), 3000);
        let codes: std::collections::HashSet<String> = (0..500).map(super::credit_code).collect();
        assert_eq!(codes.len(), 500);
    }
}

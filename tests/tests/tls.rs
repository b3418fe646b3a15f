//! TLS against real servers: a private PostgreSQL and a private RabbitMQ, started here with
//! certificates from a certificate authority this test generates, both requiring TLS and a
//! client certificate. Proves that a pool over `sslmode=verify-full` and a `Broker` over
//! `amqps://` work end to end, and that a certificate from another CA is refused.
//!
//! Skips (with a message) only when the PostgreSQL or RabbitMQ server binaries are absent.
//! The instances and their folder (`.local/tls-test-…`) are removed at the end, also when
//! the test fails.

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use messaging::{Broker, BrokerConfig};
use platform::db::DatabaseSettings;
use platform::tls::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::error::Error as StdError;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RMQ_BIN: &str = "/usr/lib/rabbitmq/bin";
const START_TIMEOUT_SECS: u64 = 60;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl`.
fn pg_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// Runs a command to completion; panics with its output when it fails.
fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The whole error chain on one line, for assertions on the cause.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

// --- certificates ----------------------------------------------------------------------

struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_pki(dir: &Path) -> Pki {
    let ca = new_ca("insurance tls-test CA");
    let other = new_ca("some other CA");
    // The server's certificate names 127.0.0.1 and localhost, nothing else.
    let (server_cert, server_key) = leaf(
        &ca,
        "tls-test server",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    // Postgres with clientcert=verify-ca and trust checks only the chain; guest on RabbitMQ
    // logs in with its password.
    let (client_cert, client_key) = leaf(&ca, "postgres", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let pki = Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    for (path, pem) in [
        (&pki.ca, ca.pem()),
        (&pki.other_ca, other.pem()),
        (&pki.server_cert, server_cert),
        (&pki.server_key, server_key),
        (&pki.client_cert, client_cert),
        (&pki.client_key, client_key),
    ] {
        std::fs::write(path, pem).unwrap();
    }
    pki
}

// --- the servers -----------------------------------------------------------------------

/// Stops both instances and deletes the folder when dropped, also on a panic.
struct Servers {
    dir: PathBuf,
    pg_bin: PathBuf,
    pg_data: PathBuf,
    pg_started: bool,
    rmq_env: Vec<(String, String)>,
    rmq_node: String,
    rmq_pid_file: PathBuf,
    rmq_child: Option<Child>,
}

impl Servers {
    fn pg_as(&self, program: &Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn rabbitmqctl(&self, timeout_secs: u64) -> Command {
        let mut c = Command::new("timeout");
        c.arg(timeout_secs.to_string())
            .arg(Path::new(RMQ_BIN).join("rabbitmqctl"))
            .args(["-n", &self.rmq_node, "-q"])
            .envs(self.rmq_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if self.pg_started {
            let _ = self
                .pg_as(&self.pg_bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.pg_data)
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut child) = self.rmq_child.take() {
            let stopped = self
                .rabbitmqctl(40)
                .arg("stop")
                .arg(&self.rmq_pid_file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !stopped {
                // The node's own pid, then the launcher's process group (started by us).
                if let Ok(pid) = std::fs::read_to_string(&self.rmq_pid_file) {
                    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
                }
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_servers(pg_bin: PathBuf) -> (Servers, Pki, u16, u16) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let dir = root.join(".local").join(format!("tls-test-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let rmq_base = dir.join("rabbitmq");
    let rmq_node = format!("tls-test-{id}@localhost");
    let (pg_port, amqps_port, amqp_port, dist_port) = (free_port(), free_port(), free_port(), free_port());
    let rmq_env: Vec<(String, String)> = [
        ("HOME", rmq_base.join("home")),
        ("RABBITMQ_CONF_ENV_FILE", rmq_base.join("rabbitmq-env.conf")),
        ("RABBITMQ_CONFIG_FILE", rmq_base.join("rabbitmq.conf")),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", rmq_base.join("advanced.config")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", rmq_base.join("enabled_plugins")),
        ("RABBITMQ_MNESIA_BASE", rmq_base.join("mnesia")),
        ("RABBITMQ_LOG_BASE", rmq_base.join("log")),
        ("RABBITMQ_PID_FILE", rmq_base.join("rabbitmq.pid")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.display().to_string()))
    .chain(
        [
            ("RABBITMQ_NODENAME", rmq_node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", amqp_port.to_string()),
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    )
    .collect();
    let mut servers = Servers {
        dir: dir.clone(),
        pg_bin: pg_bin.clone(),
        pg_data: dir.join("pg"),
        pg_started: false,
        rmq_env,
        rmq_node,
        rmq_pid_file: rmq_base.join("rabbitmq.pid"),
        rmq_child: None,
    };

    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let pki = write_pki(&certs);

    // RabbitMQ first (it takes longest), TLS listener requiring a client certificate.
    for sub in ["home", "mnesia", "log"] {
        std::fs::create_dir_all(rmq_base.join(sub)).unwrap();
    }
    std::fs::write(rmq_base.join("rabbitmq-env.conf"), "").unwrap();
    std::fs::write(rmq_base.join("enabled_plugins"), "[].\n").unwrap();
    std::fs::write(
        rmq_base.join("rabbitmq.conf"),
        format!(
            "listeners.ssl.default = 127.0.0.1:{amqps_port}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n\
             loopback_users.guest = true\n",
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(rmq_base.join("log").join("startup.log")).unwrap();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(Path::new(RMQ_BIN).join("rabbitmq-server"))
            .current_dir(&rmq_base)
            .envs(servers.rmq_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting rabbitmq-server")
    };
    servers.rmq_child = Some(child);

    // Postgres: TLS only (hostssl), with a client certificate from our CA. Its key and its
    // log in a folder of its own user.
    let pg_data = servers.pg_data.clone();
    std::fs::create_dir_all(&pg_data).unwrap();
    std::fs::set_permissions(&pg_data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pg_run = dir.join("pg-run");
    std::fs::create_dir_all(&pg_run).unwrap();
    for name in ["ca.pem", "server.pem", "server.key"] {
        std::fs::copy(certs.join(name), pg_run.join(name)).unwrap();
    }
    std::fs::set_permissions(pg_run.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    if is_root() {
        run(
            "chown postgres",
            Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&pg_data)
                .arg(&pg_run),
        );
    }
    run(
        "initdb",
        servers
            .pg_as(&pg_bin.join("initdb"))
            .arg("-D")
            .arg(&pg_data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]),
    );
    let conf = format!(
        "\n# tls test\nport = {pg_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
         fsync = off\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
        pg_run.join("server.pem").display(),
        pg_run.join("server.key").display(),
        pg_run.join("ca.pem").display()
    );
    let mut pg_conf = std::fs::read_to_string(pg_data.join("postgresql.conf")).unwrap();
    pg_conf.push_str(&conf);
    std::fs::write(pg_data.join("postgresql.conf"), pg_conf).unwrap();
    std::fs::write(
        pg_data.join("pg_hba.conf"),
        "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n\
         hostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    servers.pg_started = true;
    run(
        "pg_ctl start",
        servers
            .pg_as(&pg_bin.join("pg_ctl"))
            .arg("-D")
            .arg(&pg_data)
            .arg("-l")
            .arg(pg_run.join("postgres.log"))
            .args(["-w", "-t", &START_TIMEOUT_SECS.to_string(), "start"]),
    );

    // RabbitMQ: `wait` waits for the pid file, then for the node to boot, within the limit.
    let waited = servers
        .rabbitmqctl(START_TIMEOUT_SECS + 10)
        .args(["wait", "--timeout", &START_TIMEOUT_SECS.to_string()])
        .arg(&servers.rmq_pid_file)
        .output()
        .expect("running rabbitmqctl wait");
    assert!(
        waited.status.success(),
        "the private RabbitMQ node did not start: {}\n{}\n--- startup.log ---\n{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr),
        tail(&rmq_base.join("log").join("startup.log"))
    );
    (servers, pki, pg_port, amqps_port)
}

// --- the test --------------------------------------------------------------------------

fn db_settings(url: String, tls: TlsSettings) -> DatabaseSettings {
    DatabaseSettings {
        url,
        user: None,
        password: None,
        schema: "tls_test".into(),
        pool_size: 2,
        statement_timeout_ms: 30_000,
        lock_timeout_ms: 5_000,
        tls,
    }
}

fn broker_config(url: String, tls: TlsSettings) -> BrokerConfig {
    BrokerConfig {
        url,
        prefix: "tls-test.".into(),
        timeout_ms: 10_000,
        tls,
    }
}

#[tokio::test]
async fn postgres_and_rabbitmq_over_tls_with_a_generated_ca() {
    let Some(pg_bin) = pg_bindir() else {
        eprintln!("SKIPPED tls test: no initdb/pg_ctl under /usr/lib/postgresql/*/bin");
        return;
    };
    if !Path::new(RMQ_BIN).join("rabbitmq-server").exists() {
        eprintln!("SKIPPED tls test: {RMQ_BIN}/rabbitmq-server is absent");
        return;
    }
    let started = Instant::now();
    let (servers, pki, pg_port, amqps_port) = tokio::task::spawn_blocking(move || start_servers(pg_bin))
        .await
        .expect("starting the servers");
    eprintln!("servers up in {:?}", started.elapsed());

    let trusted = TlsSettings {
        ca_file: Some(pki.ca.clone()),
        cert_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
    };
    let wrong_ca = TlsSettings {
        ca_file: Some(pki.other_ca.clone()),
        ..trusted.clone()
    };

    // --- Postgres --------------------------------------------------------------------
    let url =
        |host: &str, mode: &str| format!("postgres://postgres@{host}:{pg_port}/postgres?sslmode={mode}");

    // A pool over verify-full: the connection is encrypted and carries both timeouts.
    let settings = db_settings(url("127.0.0.1", "verify-full"), trusted.clone());
    let pool = platform::db::connect(&settings)
        .await
        .expect("a pool over sslmode=verify-full");
    let client = pool.get().await.expect("a pooled connection");
    let row = client
        .query_one(
            "select ssl, current_setting('statement_timeout'), current_setting('lock_timeout'), \
             current_schemas(false)::text from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the pooled connection is not encrypted");
    assert_eq!(row.get::<_, String>(1), "30s");
    assert_eq!(row.get::<_, String>(2), "5s");
    assert_eq!(row.get::<_, String>(3), "{tls_test}");
    drop(client);

    // Migrations run over the same TLS settings.
    platform::db::migrate(&settings, vec![messaging::migrations()])
        .await
        .expect("migrations over verify-full");

    // A side connection (the relay's LISTEN connection) gets notifications over TLS.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (listener, driver) = platform::db::connect_one(&settings, Some(tx))
        .await
        .expect("a side connection over verify-full");
    let ssl: bool = listener
        .query_one("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the side connection is not encrypted");
    listener.batch_execute("listen tls_test").await.unwrap();
    pool.get()
        .await
        .unwrap()
        .batch_execute("notify tls_test, 'hello'")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 s")
        .expect("the driver is running");
    assert_eq!((n.channel(), n.payload()), ("tls_test", "hello"));
    drop(listener);
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the driver ends with its client")
        .unwrap()
        .expect("the side connection ended cleanly");
    pool.close();

    // A server certificate from another CA is refused, naming why.
    let e = platform::db::connect(&db_settings(url("127.0.0.1", "verify-full"), wrong_ca.clone()))
        .await
        .expect_err("verify-full with the wrong CA must fail");
    let msg = format!("{e:#}");
    eprintln!("postgres, wrong CA: {msg}");
    assert!(msg.contains("sslmode=verify-full"), "{msg}");
    assert!(
        msg.contains("invalid peer certificate") && msg.contains("UnknownIssuer"),
        "{msg}"
    );

    // verify-full compares the name; verify-ca does not (hostaddr dials 127.0.0.1 while the
    // certificate is checked against the name).
    let misnamed = |mode: &str| {
        format!(
            "postgres://postgres@db.tls-test.invalid:{pg_port}/postgres?hostaddr=127.0.0.1&sslmode={mode}"
        )
    };
    let e = platform::db::connect_one(&db_settings(misnamed("verify-full"), trusted.clone()), None)
        .await
        .expect_err("verify-full to a name the certificate lacks must fail");
    let msg = format!("{e:#}");
    eprintln!("postgres, wrong name: {msg}");
    assert!(msg.contains("certificate not valid for name"), "{msg}");
    let (c, _d) = platform::db::connect_one(&db_settings(misnamed("verify-ca"), trusted.clone()), None)
        .await
        .expect("verify-ca checks the chain only");
    c.simple_query("select 1").await.unwrap();
    // ...but verify-ca still checks the chain.
    let e = platform::db::connect_one(&db_settings(misnamed("verify-ca"), wrong_ca.clone()), None)
        .await
        .expect_err("verify-ca with the wrong CA must fail");
    assert!(format!("{e:#}").contains("UnknownIssuer"), "{e:#}");

    // require without a CA file encrypts without checking (libpq's meaning); disable does
    // not encrypt, which this server's pg_hba refuses.
    let no_ca = TlsSettings {
        ca_file: None,
        ..trusted.clone()
    };
    let (c, _d) = platform::db::connect_one(&db_settings(url("127.0.0.1", "require"), no_ca.clone()), None)
        .await
        .expect("require without a CA file");
    let ssl: bool = c
        .query_one("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    let e = platform::db::connect_one(&db_settings(url("127.0.0.1", "disable"), no_ca), None)
        .await
        .expect_err("a plain connection must be refused by hostnossl reject");
    assert!(format!("{e:#}").contains("no encryption"), "{e:#}");

    // --- RabbitMQ --------------------------------------------------------------------
    let amqps = format!("amqps://guest:guest@127.0.0.1:{amqps_port}/%2f");
    let broker = Broker::new(broker_config(amqps.clone(), trusted.clone()), "tls-test");
    let ch = broker.channel().await.expect("a channel over amqps://");
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            q.name().as_str().into(),
            "tls-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    messaging::broker::publish_confirmed(
        &ch,
        broker.timeout(),
        "",
        q.name().as_str(),
        true,
        b"over tls",
        BasicProperties::default(),
    )
    .await
    .expect("a confirmed publish over amqps://");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer is open")
        .expect("a delivery");
    assert_eq!(delivery.data, b"over tls");
    assert!(delivery.ack(BasicAckOptions::default()).await.unwrap());

    // The broker (private: ours is its only connection) sees it as TLS with our client
    // certificate.
    let listed = servers
        .rabbitmqctl(30)
        .args(["list_connections", "ssl", "peer_cert_subject", "user"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "one connection expected:\n{listed}");
    let fields: Vec<&str> = rows[0].split('\t').collect();
    assert_eq!(fields, ["true", "CN=postgres", "guest"], "{listed}");
    broker.close().await;

    // Another CA: refused during the handshake, with the reason.
    let fast = |tls: TlsSettings| BrokerConfig {
        timeout_ms: 5_000,
        ..broker_config(amqps.clone(), tls)
    };
    let e = Broker::new(fast(wrong_ca), "tls-test")
        .channel()
        .await
        .expect_err("amqps:// with the wrong CA must fail");
    let msg = chain(&e);
    eprintln!("rabbitmq, wrong CA: {msg}");
    assert!(
        msg.contains("invalid peer certificate") && msg.contains("UnknownIssuer"),
        "{msg}"
    );

    // Without a client certificate this broker refuses the connection. Under TLS 1.3 the
    // client's handshake ends before the server has checked; its alert either arrives or
    // loses the race with the reset of the connection.
    let e = Broker::new(
        fast(TlsSettings {
            ca_file: Some(pki.ca.clone()),
            ..Default::default()
        }),
        "tls-test",
    )
    .channel()
    .await
    .expect_err("amqps:// without the client certificate must fail");
    let msg = chain(&e);
    eprintln!("rabbitmq, no client certificate: {msg}");
    assert!(
        msg.contains("CertificateRequired") || msg.contains("Connection reset by peer"),
        "{msg}"
    );

    drop(servers);
    eprintln!("done in {:?}", started.elapsed());
}

/// The services' committed configuration names both timeouts and parses with the TLS
/// settings left out (their defaults).
#[test]
fn base_configuration_names_the_timeouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for service in ["enrollment", "collection"] {
        let dir = root.join("services").join(service).join("configuration");
        let s: messaging::runtime::ServiceSettings = platform::config::load(&dir).unwrap();
        let statement_timeout_ms = match service {
            // A month's assessment is one long statement.
            "collection" => 120_000,
            _ => 30_000,
        };
        assert_eq!(
            (s.database.statement_timeout_ms, s.database.lock_timeout_ms),
            (statement_timeout_ms, 5_000),
            "{service}"
        );
        assert_eq!(s.database.tls, TlsSettings::default(), "{service}");
        assert_eq!(s.broker.tls, TlsSettings::default(), "{service}");
    }
}

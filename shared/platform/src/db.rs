//! The Postgres pool of one service, bound to its own schema through `search_path`, and its
//! embedded migrations (refinery; history tables inside that schema). Every connection (pool,
//! migrations, side connections) uses TLS by the URL's `sslmode` (rustls) and carries the
//! configured `statement_timeout` and `lock_timeout`.

use crate::tls::TlsSettings;
use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Notification};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user@host:port/database[?sslmode=…]`. `sslmode` is one of `disable`,
    /// `prefer` (the default), `require`, `verify-ca` and `verify-full`, as in libpq.
    pub url: String,
    /// The service's own role (DESIGN.md §6: one per service, owning its schema), in place of
    /// the URL's user; `APP__DATABASE__USER`.
    #[serde(default)]
    pub user: Option<String>,
    /// Its password, in place of the URL's (`APP__DATABASE__PASSWORD`, from a secret: no URL
    /// escaping, never printed).
    #[serde(default)]
    pub password: Option<String>,
    /// The schema this service owns; every unqualified name resolves to it.
    pub schema: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Upper bound on any one statement, in milliseconds (`statement_timeout`); 0 = off.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// Upper bound on waiting for a lock, in milliseconds (`lock_timeout`); 0 = off.
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    /// The CA that signs the server's certificate (and a client certificate, if any).
    #[serde(default)]
    pub tls: TlsSettings,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("lock_timeout_ms", &self.lock_timeout_ms)
            .field("tls", &self.tls)
            .finish()
    }
}

fn default_pool_size() -> usize {
    16
}

/// `statement_timeout` when the configuration names none: 30 s.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// `lock_timeout` when the configuration names none: 5 s.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 5_000;

fn default_statement_timeout_ms() -> u64 {
    DEFAULT_STATEMENT_TIMEOUT_MS
}

fn default_lock_timeout_ms() -> u64 {
    DEFAULT_LOCK_TIMEOUT_MS
}

/// How a connection uses TLS, with libpq's meaning of each `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain. The certificate is checked against the CA
    /// file only when one is configured.
    Prefer,
    /// TLS or nothing. The certificate is checked against the CA file only when one is
    /// configured (then as `verify-ca`).
    Require,
    /// TLS; the certificate must chain to the CA file (or the public roots without one).
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> anyhow::Result<Self> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => anyhow::bail!(
                "database.url: sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Takes `sslmode` out of a URL (`?sslmode=` / `&sslmode=`) or a `key=value` string:
/// tokio-postgres itself knows only `disable`, `prefer` and `require`.
fn split_sslmode(url: &str) -> anyhow::Result<(String, SslMode)> {
    let mut mode = SslMode::Prefer;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), mode));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.strip_prefix("sslmode=") {
                Some(value) => mode = SslMode::parse(value)?,
                None => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, mode))
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.strip_prefix("sslmode=") {
                Some(value) => mode = SslMode::parse(value)?,
                None => kept.push(word),
            }
        }
        Ok((kept.join(" "), mode))
    }
}

impl DatabaseSettings {
    /// The `options` startup parameter: the schema's `search_path` and both timeouts.
    pub fn connection_options(&self) -> String {
        format!(
            "-c search_path={} -c statement_timeout={} -c lock_timeout={}",
            self.schema, self.statement_timeout_ms, self.lock_timeout_ms
        )
    }

    /// The sslmode the URL asks for (`prefer` when it names none).
    pub fn ssl_mode(&self) -> anyhow::Result<SslMode> {
        Ok(split_sslmode(&self.url)?.1)
    }

    fn pg_config(&self) -> anyhow::Result<(tokio_postgres::Config, SslMode)> {
        let (url, mode) = split_sslmode(&self.url)?;
        let mut cfg: tokio_postgres::Config =
            url.parse().context("database.url is not a valid Postgres URL")?;
        if let Some(user) = &self.user {
            cfg.user(user);
        }
        if let Some(password) = &self.password {
            cfg.password(password);
        }
        cfg.options(self.connection_options());
        // Shows in pg_stat_activity which schema (service) a connection serves.
        cfg.application_name(&self.schema);
        cfg.connect_timeout(Duration::from_secs(5));
        cfg.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        Ok((cfg, mode))
    }

    /// The rustls connector for `mode`, checking the server's certificate as libpq would.
    fn tls(&self, mode: SslMode) -> anyhow::Result<MakeRustlsConnect> {
        let provider = crate::tls::provider();
        let verify_chain = || -> anyhow::Result<Arc<WebPkiServerVerifier>> {
            let roots = self.tls.root_store().context("database.tls")?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .context("database.tls: building the certificate verifier")
        };
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable => Arc::new(AnyCertificate(provider.clone())),
            SslMode::Prefer | SslMode::Require if self.tls.ca_file.is_none() => {
                Arc::new(AnyCertificate(provider.clone()))
            }
            SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Arc::new(ChainOnly(verify_chain()?)),
            SslMode::VerifyFull => verify_chain()?,
        };
        let config = if mode == SslMode::Disable {
            // Never used for a handshake; no files are read.
            TlsSettings::default().client_config(verifier)
        } else {
            self.tls.client_config(verifier)
        };
        Ok(MakeRustlsConnect::new(config.context("database.tls")?))
    }
}

/// `prefer` and `require` without a CA file: encrypted, but any certificate is accepted (as
/// libpq does). The handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is verified before the name: a name mismatch means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The driver of a side connection: forwards notifications (LISTEN) to `notifications`
/// and ends with the connection, returning why it ended.
pub type ConnectionDriver = JoinHandle<Result<(), tokio_postgres::Error>>;

/// One connection outside the pool, with the same URL, TLS, `search_path` and timeouts as
/// the pool's, for side work (the relay's LISTEN connection; pooled connections drop
/// notifications). Its driver task is spawned; `NOTIFY`s arrive on `notifications` when
/// given. Dropping the client closes the connection and ends the driver.
pub async fn connect_one(
    settings: &DatabaseSettings,
    notifications: Option<mpsc::UnboundedSender<Notification>>,
) -> anyhow::Result<(tokio_postgres::Client, ConnectionDriver)> {
    let (cfg, mode) = settings.pg_config()?;
    let tls = settings.tls(mode)?;
    let (client, mut conn) = cfg
        .connect(tls)
        .await
        .with_context(|| describe_connect(&cfg, mode))?;
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(tx) = &notifications {
                        let _ = tx.send(n);
                    }
                }
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    tracing::debug!(%notice, "postgres notice");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    Ok((client, driver))
}

fn describe_connect(cfg: &tokio_postgres::Config, mode: SslMode) -> String {
    let ports = cfg.get_ports();
    let targets: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            // One port applies to every host; otherwise they pair up.
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    format!(
        "connecting to Postgres at {} (sslmode={})",
        targets.join(","),
        mode.as_str()
    )
}

/// Returns a pool whose connections use the service's schema, creating the schema only when
/// it is missing (a service's own role may not create schemas: the operator tooling makes
/// it, owned by that role, see [`provision_role`]).
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    crate::config::validate_identifier("database.schema", &settings.schema)?;
    let (cfg, mode) = settings.pg_config()?;
    let tls = settings.tls(mode)?;
    let (client, driver) = connect_one(settings, None).await?;
    let exists = client
        .query_opt(
            "select 1 from pg_namespace where nspname = $1",
            &[&settings.schema],
        )
        .await
        .context("looking for the service's schema")?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("create schema if not exists {}", settings.schema))
            .await
            .with_context(|| {
                format!(
                    "schema {} does not exist and this role may not create it: make it with \
                     'insurancectl accounts apply' (it creates each service's role and schema)",
                    settings.schema
                )
            })?;
    }
    drop(client);
    let _ = driver.await;
    let manager = Manager::from_config(
        cfg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the Postgres pool")
}

/// Runs migration sets in order on one connection, under an advisory lock so that replicas
/// starting together do not race.
///
/// The connection has the configured `lock_timeout` (a migration's DDL gives up rather than
/// queue every other transaction behind it), but no `statement_timeout` (a migration may
/// rightly run for minutes), and waiting for the advisory lock, while another replica
/// migrates, is bounded by neither.
pub async fn migrate(settings: &DatabaseSettings, runners: Vec<refinery::Runner>) -> anyhow::Result<()> {
    let migration_settings = DatabaseSettings {
        statement_timeout_ms: 0,
        ..settings.clone()
    };
    let (mut client, driver) = connect_one(&migration_settings, None)
        .await
        .context("connecting to Postgres for migrations")?;
    let key = format!("migrate:{}", settings.schema);
    client.batch_execute("set lock_timeout = 0").await?;
    client
        .execute("select pg_advisory_lock(hashtext($1))", &[&key])
        .await?;
    client
        .batch_execute(&format!("set lock_timeout = {}", settings.lock_timeout_ms))
        .await?;
    let mut result = Ok(());
    for runner in runners {
        if let Err(e) = runner.run_async(&mut client).await {
            result = Err(anyhow::Error::new(e).context(format!("migrating schema {}", settings.schema)));
            break;
        }
    }
    client
        .execute("select pg_advisory_unlock(hashtext($1))", &[&key])
        .await?;
    drop(client);
    let _ = driver.await;
    result
}

/// Quotes `name` as a Postgres identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes `s` as a Postgres string literal (standard-conforming strings, the default).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// As the database's administrator (`admin`): the login role `role` (no superuser, no
/// database or role creation, no inherited rights), owning schema `schema` and everything in
/// it, and nothing else. Other services' schemas are closed to it, because they belong to
/// their own roles and nobody grants it usage; since PostgreSQL 15 it cannot create in
/// `public` either. Safe to run again: an existing role keeps its password unless one is
/// given, and what an earlier administrator created in the schema changes owner.
pub async fn provision_role(
    admin: &tokio_postgres::Client,
    role: &str,
    schema: &str,
    password: Option<&str>,
) -> anyhow::Result<()> {
    crate::config::validate_identifier("role", role)?;
    crate::config::validate_identifier("schema", schema)?;
    let (r, s) = (ident(role), ident(schema));
    let exists = admin
        .query_opt("select 1 from pg_roles where rolname = $1", &[&role])
        .await?
        .is_some();
    if !exists {
        // Another replica of the tooling may create it at the same moment.
        if let Err(e) = admin.batch_execute(&format!("create role {r} login")).await
            && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
        {
            return Err(anyhow::Error::new(e).context(format!("creating role {role}")));
        }
    }
    let mut alter = format!("alter role {r} login nosuperuser nocreatedb nocreaterole noinherit");
    if let Some(pw) = password {
        alter.push_str(&format!(" password {}", literal(pw)));
    }
    admin
        .batch_execute(&alter)
        .await
        .with_context(|| format!("setting up role {role}"))?;
    admin
        .batch_execute(&format!(
            "create schema if not exists {s} authorization {r}; alter schema {s} owner to {r}"
        ))
        .await
        .with_context(|| format!("creating schema {schema} for {role}"))?;
    // Objects an administrator made there before the role existed (an older start-up ran
    // the migrations as the administrator).
    let foreign = admin
        .query(
            "select c.relname, c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') \
             and pg_get_userbyid(c.relowner) <> $2 \
             and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'a'))",
            &[&schema, &role],
        )
        .await?;
    for row in foreign {
        let (name, kind): (String, String) = (row.get(0), row.get(1));
        let what = match kind.as_str() {
            "v" => "view",
            "m" => "materialized view",
            "S" => "sequence",
            "f" => "foreign table",
            _ => "table",
        };
        admin
            .batch_execute(&format!("alter {what} {s}.{} owner to {r}", ident(&name)))
            .await
            .with_context(|| format!("giving {schema}.{name} to {role}"))?;
    }
    let functions = admin
        .query(
            "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname = $1 and pg_get_userbyid(p.proowner) <> $2",
            &[&schema, &role],
        )
        .await?;
    for row in functions {
        let signature: String = row.get(0);
        admin
            .batch_execute(&format!("alter routine {signature} owner to {r}"))
            .await
            .with_context(|| format!("giving {signature} to {role}"))?;
    }
    let types = admin
        .query(
            "select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace \
             where n.nspname = $1 and t.typtype in ('e', 'd', 'c') and pg_get_userbyid(t.typowner) <> $2 \
             and not exists (select 1 from pg_class c where c.reltype = t.oid and c.relkind <> 'c')",
            &[&schema, &role],
        )
        .await?;
    for row in types {
        let name: String = row.get(0);
        admin
            .batch_execute(&format!("alter type {s}.{} owner to {r}", ident(&name)))
            .await
            .with_context(|| format!("giving type {schema}.{name} to {role}"))?;
    }
    Ok(())
}

/// Drops `role` and everything it owns in the current database (the tests' teardown).
pub async fn drop_role(admin: &tokio_postgres::Client, role: &str) -> anyhow::Result<()> {
    let exists = admin
        .query_opt("select 1 from pg_roles where rolname = $1", &[&role])
        .await?
        .is_some();
    if exists {
        let r = ident(role);
        admin
            .batch_execute(&format!("drop owned by {r} cascade; drop role if exists {r}"))
            .await
            .with_context(|| format!("dropping role {role}"))?;
    }
    Ok(())
}

/// True when a trivial query succeeds within a second (used by `/readyz`).
pub async fn is_reachable(pool: &Pool) -> bool {
    let check = async {
        let client = pool.get().await.ok()?;
        client.simple_query("select 1").await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), check).await,
        Ok(Some(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: url.into(),
            user: None,
            password: None,
            schema: "enrollment".into(),
            pool_size: 4,
            statement_timeout_ms: 30_000,
            lock_timeout_ms: 5_000,
            tls: TlsSettings::default(),
        }
    }

    #[test]
    fn every_connection_carries_search_path_and_both_timeouts() {
        let mut s = settings("postgres://postgres@127.0.0.1:5432/insurance");
        assert_eq!(
            s.connection_options(),
            "-c search_path=enrollment -c statement_timeout=30000 -c lock_timeout=5000"
        );
        s.statement_timeout_ms = 0;
        s.lock_timeout_ms = 250;
        assert_eq!(
            s.connection_options(),
            "-c search_path=enrollment -c statement_timeout=0 -c lock_timeout=250"
        );
        let (cfg, _) = s.pg_config().unwrap();
        assert_eq!(cfg.get_options(), Some(s.connection_options().as_str()));
    }

    #[test]
    fn timeouts_default_when_the_yaml_names_none() {
        let s: DatabaseSettings =
            serde_json::from_str(r#"{"url": "postgres://h/db", "schema": "enrollment"}"#).unwrap();
        assert_eq!((s.statement_timeout_ms, s.lock_timeout_ms), (30_000, 5_000));
        assert_eq!(s.tls, TlsSettings::default());
    }

    #[test]
    fn sslmode_is_taken_from_the_url() {
        let cases = [
            ("postgres://u@h:1/db", "postgres://u@h:1/db", SslMode::Prefer),
            (
                "postgres://u@h:1/db?sslmode=disable",
                "postgres://u@h:1/db",
                SslMode::Disable,
            ),
            (
                "postgres://u@h:1/db?connect_timeout=3&sslmode=verify-full",
                "postgres://u@h:1/db?connect_timeout=3",
                SslMode::VerifyFull,
            ),
            (
                "postgresql://u@h/db?sslmode=verify-ca&application_name=x",
                "postgresql://u@h/db?application_name=x",
                SslMode::VerifyCa,
            ),
            ("host=h user=u sslmode=require", "host=h user=u", SslMode::Require),
        ];
        for (url, rest, mode) in cases {
            assert_eq!(split_sslmode(url).unwrap(), (rest.to_owned(), mode), "{url}");
        }
        let e = split_sslmode("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(e.to_string().contains("sslmode 'allow'"), "{e}");
        // tokio-postgres gets a mode it knows: verify-* connect with TLS required.
        let (cfg, mode) = settings("postgres://u@h/db?sslmode=verify-full")
            .pg_config()
            .unwrap();
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(cfg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    }

    #[test]
    fn a_missing_ca_file_is_named_in_the_error() {
        let mut s = settings("postgres://u@h/db?sslmode=verify-full");
        s.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let e = s.tls(SslMode::VerifyFull).err().expect("an error");
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"), "{e:#}");
        // Not read at all when TLS is off.
        assert!(s.tls(SslMode::Disable).is_ok());
    }
}

//! A small client of the RabbitMQ management HTTP API: AMQP cannot create users, set
//! permissions or run shovels, so the command-line client's `subscriber` commands and the
//! services' data-sharing hold (`freeze::data_sharing`) go through it.
//!
//! The API is plain HTTP here (no TLS stack is built in); ureq is blocking, so every call runs
//! on tokio's blocking pool and is bounded by the tool's `--timeout`.

use anyhow::{Context, anyhow, bail};
use lapin::uri::AMQPUri;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:15672";

/// Everything but RFC 3986's unreserved characters is encoded in a path segment, so `/` (the
/// default vhost) becomes `%2F` and a user name cannot reach another endpoint.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment of an API URL.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `/api/` followed by the encoded segments.
pub fn api_path(segments: &[&str]) -> String {
    let mut p = String::from("/api");
    for s in segments {
        p.push('/');
        p.push_str(&segment(s));
    }
    p
}

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
pub fn amqp_target(url: &str) -> anyhow::Result<AmqpTarget> {
    let uri = AMQPUri::from_str(url).map_err(|e| anyhow!("the AMQP URL is not valid: {e}"))?;
    Ok(AmqpTarget {
        user: uri.authority.userinfo.username,
        password: uri.authority.userinfo.password,
        host: uri.authority.host,
        port: uri.authority.port,
        vhost: uri.vhost,
    })
}

/// Standard base64 (RFC 4648, with padding), for the `Authorization: Basic` header.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// The management API of one broker, as one user.
#[derive(Clone)]
pub struct Api {
    base: String,
    user: String,
    authorization: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
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
        let config = ureq::Agent::config_builder()
            // Statuses are answers to read (404 = not there), not transport errors.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build();
        Ok(Api {
            authorization: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            user: user.to_owned(),
            base,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let agent = self.agent.clone();
        let auth = self.authorization.clone();
        let body = body.map(serde_json::to_vec).transpose()?;
        let result = tokio::task::spawn_blocking(move || -> Result<(u16, String), ureq::Error> {
            let mut resp = match (method, body) {
                (Method::Get, _) => agent
                    .get(&url)
                    .header("authorization", &auth)
                    .header("accept", "application/json")
                    .call()?,
                (Method::Delete, _) => agent.delete(&url).header("authorization", &auth).call()?,
                (Method::Put, body) => agent
                    .put(&url)
                    .header("authorization", &auth)
                    .content_type("application/json")
                    .send(body.unwrap_or_default())?,
            };
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            Ok((status, text))
        })
        .await
        .context("the management API call did not finish")?;
        let (status, text) = result.map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot reach the RabbitMQ management API at {} (is the rabbitmq_management plugin \
                 enabled? scripts/servers.sh enables it locally; check --api-url / RABBITMQ_API_URL)",
                self.base
            ))
        })?;
        if status == 401 {
            bail!(
                "the management API at {} refused user '{}' (401): give --api-user/--api-password \
                 (RABBITMQ_API_USER/RABBITMQ_API_PASSWORD)",
                self.base,
                self.user
            );
        }
        Ok((status, text))
    }

    fn failure(method: Method, path: &str, status: u16, text: &str) -> anyhow::Error {
        // The API explains itself in {"error": …, "reason": …}.
        let reason = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        anyhow!(
            "management API: {} {path} answered {status}: {reason}",
            method.as_str()
        )
    }

    /// The JSON at `path`, or `None` when the API says 404.
    pub async fn get(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let (status, text) = self.call(Method::Get, path, None).await?;
        match status {
            200 => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("management API: GET {path} did not answer JSON")),
            404 => Ok(None),
            _ => Err(Self::failure(Method::Get, path, status, &text)),
        }
    }

    /// Creates or replaces the resource at `path`.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let (status, text) = self.call(Method::Put, path, Some(body)).await?;
        match status {
            200..=299 => Ok(()),
            _ => Err(Self::failure(Method::Put, path, status, &text)),
        }
    }

    /// Deletes the resource at `path`; `false` when it was not there.
    pub async fn delete(&self, path: &str) -> anyhow::Result<bool> {
        let (status, text) = self.call(Method::Delete, path, None).await?;
        match status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::failure(Method::Delete, path, status, &text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("guest:guest", "Z3Vlc3Q6Z3Vlc3Q="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn path_segments_are_encoded_so_the_default_vhost_is_one_segment() {
        assert_eq!(
            api_path(&["permissions", "/", "t1.tax-authority"]),
            "/api/permissions/%2F/t1.tax-authority"
        );
        assert_eq!(api_path(&["users", "a/../b c"]), "/api/users/a%2F..%2Fb%20c");
        assert_eq!(segment("v?x#y%"), "v%3Fx%23y%25");
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
}

//! Opening an AMQP connection: `amqp://` in plain TCP, `amqps://` over TLS (rustls, ring).
//!
//! For `amqps://` the server's certificate must chain to the bundled public (Mozilla) roots
//! or to the CAs of `tls.ca_file`, which are added to them, and must name the URL's host.
//! With `tls.cert_file` and `tls.key_file` the connection presents a client certificate
//! (for `?auth_mechanism=external` or a broker that requires one). For `amqp://` the TLS
//! settings are not used.
//!
//! A cluster is named by the URLs of its nodes separated by commas
//! (`amqp://u:p@mq-1:5672/%2f,amqp://u:p@mq-2:5672/%2f,…`): each connection tries them in
//! turn, starting one further than the previous connection of the process, so that the
//! connections of a process spread over the nodes and a node that is down is passed over.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use platform::tls::TlsSettings;

/// Where the next connection of this process starts in a list of nodes.
static NEXT_NODE: AtomicUsize = AtomicUsize::new(0);

/// The node URLs of `url`: one, or several separated by commas (blanks around them ignored).
pub fn node_urls(url: &str) -> Vec<&str> {
    let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if urls.is_empty() { vec![url] } else { urls }
}

/// `url` with the password of its user hidden, for logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// Connects to `url` (`amqp://` or `amqps://`, or several nodes separated by commas) with the
/// CA and client certificate of `tls`, giving each node at most `per_node`. A file that
/// cannot be read or holds no certificate is an I/O error naming the file; when every node
/// fails, the error is the last node's.
pub async fn connect(
    url: &str,
    props: ConnectionProperties,
    tls: &TlsSettings,
    per_node: Duration,
) -> lapin::Result<Connection> {
    let config = tls_config(tls)?;
    let urls = node_urls(url);
    if urls.len() == 1 {
        return Connection::connect_with_config(urls[0], props, config, lapin::runtime::default_runtime()?)
            .await;
    }
    let start = NEXT_NODE.fetch_add(1, Ordering::Relaxed);
    let mut last = None;
    for i in 0..urls.len() {
        let node = urls[(start + i) % urls.len()];
        let attempt = Connection::connect_with_config(
            node,
            props.clone(),
            config.clone(),
            lapin::runtime::default_runtime()?,
        );
        let e = match tokio::time::timeout(per_node, attempt).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e,
            Err(_) => lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {per_node:?}"),
            )),
        };
        tracing::warn!(node = %redacted(node), error = %e, "broker node not reachable; trying the next");
        last = Some(e);
    }
    Err(last.expect("at least one node"))
}

/// lapin's TLS configuration for `tls`: the CA file's PEM text and a PEM identity.
pub fn tls_config(tls: &TlsSettings) -> std::io::Result<OwnedTLSConfig> {
    Ok(OwnedTLSConfig {
        cert_chain: tls.ca_pem()?,
        identity: tls.identity_pem()?.map(|id| OwnedIdentity::PKCS8 {
            pem: id.cert_pem,
            key: id.key_pem,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_its_node_urls_separated_by_commas() {
        assert_eq!(node_urls("amqp://h:5672/%2f"), ["amqp://h:5672/%2f"]);
        assert_eq!(
            node_urls("amqp://u:p@a:1/%2f, amqp://u:p@b:2/%2f,,amqp://u:p@c:3/%2f"),
            ["amqp://u:p@a:1/%2f", "amqp://u:p@b:2/%2f", "amqp://u:p@c:3/%2f"]
        );
        assert_eq!(redacted("amqp://svc:secret@a:1/%2f"), "amqp://svc:***@a:1/%2f");
        assert_eq!(redacted("amqp://a:1/%2f"), "amqp://a:1/%2f");
    }

    /// The first node is down (nothing listens on its port): the connection goes to the next.
    #[tokio::test]
    async fn a_node_that_is_down_is_passed_over() {
        let url =
            std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let list = format!("amqp://guest:guest@127.0.0.1:{dead}/%2f,{url}");
        for _ in 0..3 {
            let conn = connect(
                &list,
                ConnectionProperties::default(),
                &TlsSettings::default(),
                Duration::from_secs(5),
            )
            .await
            .expect("the live node");
            assert!(conn.status().connected());
            conn.close(200, "done".into()).await.unwrap();
        }
        let all_dead =
            format!("amqp://guest:guest@127.0.0.1:{dead}/%2f,amqp://guest:guest@127.0.0.1:{dead}/%2f");
        assert!(
            connect(
                &all_dead,
                ConnectionProperties::default(),
                &TlsSettings::default(),
                Duration::from_secs(5)
            )
            .await
            .is_err()
        );
    }

    #[test]
    fn no_files_is_the_default_configuration() {
        assert_eq!(
            tls_config(&TlsSettings::default()).unwrap(),
            OwnedTLSConfig::default()
        );
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = tls_config(&missing).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");

        let dir = std::env::temp_dir().join(format!("messaging-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_config(&TlsSettings {
            ca_file: Some(empty.clone()),
            ..Default::default()
        })
        .unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");

        let half = TlsSettings {
            cert_file: Some("/nonexistent/client.pem".into()),
            ..Default::default()
        };
        let e = tls_config(&half).unwrap_err();
        assert!(e.to_string().contains("set together"), "{e}");
    }
}

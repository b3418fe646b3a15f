//! Opening an AMQP connection: `amqp://` in plain TCP, `amqps://` over TLS (rustls, ring).
//!
//! For `amqps://` the server's certificate must chain to the bundled public (Mozilla) roots
//! or to the CAs of `tls.ca_file`, which are added to them, and must name the URL's host.
//! With `tls.cert_file` and `tls.key_file` the connection presents a client certificate
//! (for `?auth_mechanism=external` or a broker that requires one). For `amqp://` the TLS
//! settings are not used.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties};

pub use platform::tls::TlsSettings;

/// Connects to `url` (`amqp://` or `amqps://`) with the CA and client certificate of `tls`.
/// A file that cannot be read or holds no certificate is an I/O error naming the file.
pub async fn connect(url: &str, props: ConnectionProperties, tls: &TlsSettings) -> lapin::Result<Connection> {
    let config = tls_config(tls)?;
    Connection::connect_with_config(url, props, config, lapin::runtime::default_runtime()?).await
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

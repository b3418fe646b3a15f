//! Certificate files for TLS connections to the broker (`amqps://`) and to Postgres
//! (`sslmode=…`). Both use rustls with the ring provider; the files are PEM.

use serde::Deserialize;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which certificate authority to trust and, for mutual TLS, which certificate to present.
/// Every field is optional; the default trusts the bundled public (Mozilla) roots only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) that sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// A client certificate chain and its key, as PEM bytes.
pub struct PemIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

fn read(field: &str, path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {field} {}: {e}", path.display())))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl TlsSettings {
    /// The CA file's PEM text, checked to hold at least one certificate.
    pub fn ca_pem(&self) -> io::Result<Option<String>> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let bytes = read("ca_file", path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| invalid(format!("ca_file {} is not PEM text", path.display())))?;
        if certificates(text.as_bytes(), "ca_file", path)?.is_empty() {
            return Err(invalid(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
        Ok(Some(text))
    }

    /// The client certificate and key, when both are set; an error when only one is.
    pub fn identity_pem(&self) -> io::Result<Option<PemIdentity>> {
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(PemIdentity {
                cert_pem: read("cert_file", cert)?,
                key_pem: read("key_file", key)?,
            })),
            _ => Err(invalid(
                "cert_file and key_file must be set together (mutual TLS)".into(),
            )),
        }
    }

    /// The trust anchors: the CA file's certificates when one is set, else the public roots.
    pub fn root_store(&self) -> io::Result<rustls::RootCertStore> {
        let Some(path) = &self.ca_file else {
            return Ok(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
        };
        let pem = read("ca_file", path)?;
        let mut store = rustls::RootCertStore::empty();
        for cert in certificates(&pem, "ca_file", path)? {
            store
                .add(cert)
                .map_err(|e| invalid(format!("ca_file {}: {e}", path.display())))?;
        }
        if store.is_empty() {
            return Err(invalid(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
        Ok(store)
    }

    /// A rustls client configuration (ring provider) checking the server with `verifier`,
    /// presenting the client certificate if one is configured.
    pub fn client_config(
        &self,
        verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    ) -> io::Result<rustls::ClientConfig> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match self.identity_pem()? {
            None => Ok(builder.with_no_client_auth()),
            Some(id) => {
                let path = self.cert_file.as_deref().unwrap_or(Path::new(""));
                let certs = certificates(&id.cert_pem, "cert_file", path)?;
                let key = {
                    use rustls::pki_types::pem::PemObject;
                    rustls::pki_types::PrivateKeyDer::from_pem_slice(&id.key_pem).map_err(|e| {
                        invalid(format!(
                            "key_file {}: {e}",
                            self.key_file.as_deref().unwrap_or(Path::new("")).display()
                        ))
                    })?
                };
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| invalid(format!("client certificate: {e}")))
            }
        }
    }
}

/// The crypto provider every TLS connection of the suite uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(
    pem: &[u8],
    field: &str,
    path: &Path,
) -> io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{field} {}: {e}", path.display())))
}

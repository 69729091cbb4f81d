//! Optional TLS on the API listener (`[server.tls]`), with mutual TLS when a
//! client CA is given. Certificates are re-read on SIGHUP; a bad set is
//! refused and the one in force stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the listener's certificate, key and optional client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads PEM certificates; at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// Builds the rustls server configuration from the files, HTTP/1.1 only.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&files.cert_file)?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| format!("{}: {e}", files.key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} does not match {}: {e}",
            files.cert_file.display(),
            files.key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The acceptor in force, swappable on reload.
pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl ReloadableTls {
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let acceptor = TlsAcceptor::from(server_config(&files)?);
        Ok(ReloadableTls {
            files,
            current: RwLock::new(acceptor),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().expect("tls lock").clone()
    }

    /// Re-reads the files; on any problem the current certificates stay.
    pub fn reload(&self) -> Result<(), String> {
        let acceptor = TlsAcceptor::from(server_config(&self.files)?);
        *self.current.write().expect("tls lock") = acceptor;
        Ok(())
    }
}

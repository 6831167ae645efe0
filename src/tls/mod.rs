//! TLS for the tap's listener, for virtual devices and towards an external
//! broker: rustls with the ring provider (no OpenSSL, no aws-lc build).
//!
//! Without a certificate of the user's own, the workbench makes a local CA
//! and, signed by it, a server certificate for localhost / 127.0.0.1 / ::1
//! and a client certificate (for `--tls-require-client-cert`). They are kept
//! in one folder and reused on the next start, so a backend that trusts the
//! CA file once keeps trusting it.

mod diagnostics;

pub use diagnostics::{KeyLogFile, handshake_failure, not_tls, subject};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How the tap listens with TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Where the TLS listener binds.
    pub listen: std::net::SocketAddr,
    /// The server certificate chain (PEM) and its key; both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Clients must present a certificate signed by the generated CA or by `client_ca`.
    pub require_client_cert: bool,
    /// More CAs whose client certificates are accepted (PEM).
    pub client_ca: Option<PathBuf>,
    /// Where generated certificates are kept.
    pub dir: PathBuf,
    /// Write the TLS session keys here (SSLKEYLOGFILE format, for Wireshark).
    pub keylog: Option<PathBuf>,
}

impl TlsOptions {
    /// A listener on `listen` with certificates generated in (or read from)
    /// `dir`; no client certificates asked for, no key log.
    pub fn generated(listen: std::net::SocketAddr, dir: PathBuf) -> TlsOptions {
        TlsOptions {
            listen,
            cert: None,
            key: None,
            require_client_cert: false,
            client_ca: None,
            dir,
            keylog: None,
        }
    }
}

/// The files a user needs to connect their own clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA to trust (the generated one, or the last certificate of the given chain).
    pub ca: Option<PathBuf>,
    /// A client certificate and key signed by the generated CA.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// A ready TLS set-up: the acceptor for the tap and the client configuration
/// virtual devices connect with.
pub struct TlsSetup {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub devices: Arc<ClientConfig>,
    pub files: TlsFiles,
}

/// Why a TLS set-up could not be made; every message names the file or the
/// option at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {error}", path.display())]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a PEM certificate file ({error})", path.display())]
    NotPem {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("{}: expected at least one \"-----BEGIN CERTIFICATE-----\" block", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: expected a PEM private key (\"-----BEGIN PRIVATE KEY-----\"): {error}", path.display())]
    NoKey {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("generating the local TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "--tls-cert and --tls-key go together: give both, or neither for a generated localhost certificate"
    )]
    CertWithoutKey,
    #[error("{}: not usable as a trust anchor: {error}", path.display())]
    NotTrustAnchor { path: PathBuf, error: rustls::Error },
    #[error("{}: not usable as a CA: {error}", path.display())]
    NotCa { path: PathBuf, error: rustls::Error },
    #[error(
        "--tls-require-client-cert with your own certificate needs --tls-client-ca FILE (the CA your clients' certificates are signed by)"
    )]
    ClientCaNeeded,
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{} / {}: the certificate and key do not make a usable pair: {error}", cert.display(), key.display())]
    NotAPair {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
    #[error("{}: {error}", cert.display())]
    ClientCert { cert: PathBuf, error: rustls::Error },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("no trusted CA: the system has none; give one with --broker-ca FILE")]
    NoTrustedCa,
    #[error("{host}: not a valid TLS server name ({error})")]
    ServerName {
        host: String,
        error: rustls::pki_types::InvalidDnsNameError,
    },
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |error| TlsError::File {
        path: path.to_path_buf(),
        error,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trust the certificates in `path` (a CA's PEM file).
fn add_ca(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    for c in load_certs(path)? {
        roots.add(c).map_err(|error| TlsError::NotCa {
            path: path.to_path_buf(),
            error,
        })?;
    }
    Ok(())
}

/// Every certificate in a PEM file; the error names the file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(file_error(path))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::NotPem {
            path: path.to_path_buf(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1); the error names the file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(file_error(path))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| TlsError::NoKey {
        path: path.to_path_buf(),
        error,
    })
}

/// Make the CA, server and client certificates in `dir` unless they are there.
fn ensure_generated(dir: &Path) -> Result<(), TlsError> {
    let names = [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ];
    let complete = names.iter().all(|n| dir.join(n).is_file())
        && load_certs(&dir.join("server.pem")).is_ok()
        && load_key(&dir.join("server.key")).is_ok()
        && load_certs(&dir.join("ca.pem")).is_ok();
    if complete {
        return Ok(());
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // A name of its own: a client trusting another workbench's CA then hears
    // "unknown CA", not a signature failure against a namesake.
    let tag: String = ca_key.public_key_raw()[1..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ca.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("MQTT Workbench local CA {tag}"),
    );
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |names: Vec<String>, cn: &str, usage: rcgen::ExtendedKeyUsagePurpose| {
        let key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(names)?;
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &issuer)?;
        Ok::<_, TlsError>((cert.pem(), key.serialize_pem()))
    };
    let (server_pem, server_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        "localhost",
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client_pem, client_key) = leaf(
        vec![],
        "mqtt-workbench client",
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    for (name, text, secret) in [
        ("ca.pem", ca_cert.pem(), false),
        ("server.pem", server_pem, false),
        ("server.key", server_key, true),
        ("client.pem", client_pem, false),
        ("client.key", client_key, true),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(file_error(&path))?;
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        #[cfg(not(unix))]
        let _ = secret;
    }
    Ok(())
}

/// Build the TLS set-up (reads and may write files: call off the UI thread).
pub fn setup(opts: &TlsOptions) -> Result<TlsSetup, TlsError> {
    let generated = opts.cert.is_none();
    let (cert_path, key_path) = match (&opts.cert, &opts.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => {
            ensure_generated(&opts.dir)?;
            (opts.dir.join("server.pem"), opts.dir.join("server.key"))
        }
        _ => return Err(TlsError::CertWithoutKey),
    };
    let chain = load_certs(&cert_path)?;
    let key = load_key(&key_path)?;
    let ca_path = if generated {
        Some(opts.dir.join("ca.pem"))
    } else {
        None
    };
    // Devices trust the generated CA, or the last certificate of the given chain.
    let mut device_roots = RootCertStore::empty();
    let anchors = match &ca_path {
        Some(p) => load_certs(p)?,
        None => chain.last().cloned().into_iter().collect(),
    };
    for c in anchors {
        device_roots
            .add(c)
            .map_err(|error| TlsError::NotTrustAnchor {
                path: cert_path.clone(),
                error,
            })?;
    }
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if opts.require_client_cert {
        let mut roots = RootCertStore::empty();
        if generated {
            for c in load_certs(&opts.dir.join("ca.pem"))? {
                roots.add(c)?;
            }
        }
        if let Some(p) = &opts.client_ca {
            add_ca(&mut roots, p)?;
        }
        if roots.is_empty() {
            return Err(TlsError::ClientCaNeeded);
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|error| TlsError::NotAPair {
            cert: cert_path.clone(),
            key: key_path.clone(),
            error,
        })?;
    if let Some(path) = &opts.keylog {
        server.key_log = Arc::new(KeyLogFile::create(path).map_err(file_error(path))?);
    }
    let device_builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(device_roots);
    let client_files =
        generated.then(|| (opts.dir.join("client.pem"), opts.dir.join("client.key")));
    let devices = match &client_files {
        Some((c, k)) if opts.require_client_cert => device_builder
            .with_client_auth_cert(load_certs(c)?, load_key(k)?)
            .map_err(|error| TlsError::ClientCert {
                cert: c.clone(),
                error,
            })?,
        _ => device_builder.with_no_client_auth(),
    };
    Ok(TlsSetup {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        devices: Arc::new(devices),
        files: TlsFiles {
            ca: ca_path,
            client_cert: client_files.as_ref().map(|(c, _)| c.clone()),
            client_key: client_files.map(|(_, k)| k),
        },
    })
}

/// A client configuration for an external broker over TLS: the system's
/// roots, plus `ca` when given (a private CA).
pub fn broker_client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(p) = ca {
        add_ca(&mut roots, p)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoTrustedCa);
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name a TLS client checks the server certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|error| TlsError::ServerName {
        host: host.to_string(),
        error,
    })
}

/// Where generated certificates live: `$XDG_DATA_HOME/mqtt-workbench/tls`
/// (or `~/.local/share/…`; the temporary folder as a last resort).
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mqtt-workbench").join("tls")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> TlsOptions {
        TlsOptions::generated("127.0.0.1:0".parse().unwrap(), dir.to_path_buf())
    }

    #[test]
    fn generated_certificates_are_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = setup(&opts(dir.path())).unwrap();
        let ca = std::fs::read(first.files.ca.as_ref().unwrap()).unwrap();
        let again = setup(&opts(dir.path())).unwrap();
        assert_eq!(std::fs::read(again.files.ca.unwrap()).unwrap(), ca);
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let mut o = opts(dir.path());
        o.cert = Some(bad.clone());
        o.key = Some(bad.clone());
        let err = setup(&o).err().unwrap().to_string();
        assert!(err.contains("bad.pem"), "{err}");
        o.cert = Some(dir.path().join("missing.pem"));
        let err = setup(&o).err().unwrap().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        o.key = None;
        assert!(setup(&o).err().unwrap().to_string().contains("go together"));
    }
}

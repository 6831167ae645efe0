//! Connection diagnostics with third-party TLS clients (Python's ssl, that
//! is OpenSSL, and Debian's mosquitto-clients) through the tap and the real
//! embedded broker: what a TLS session says (version, cipher suite, SNI,
//! client certificate), why a handshake failed, and the key log Wireshark
//! reads.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mqtt_workbench::capture::Capture;
use mqtt_workbench::engine::{EngineConfig, Readiness};
use mqtt_workbench::tls::TlsOptions;
use mqtt_workbench::wire::CloseReason;

/// Client certificates required, keys logged to `dir`/server-keys.log.
fn tls_options(dir: &Path) -> TlsOptions {
    TlsOptions {
        require_client_cert: true,
        keylog: Some(dir.join("server-keys.log")),
        ..TlsOptions::generated("127.0.0.1:0".parse().expect("an address"), dir.into())
    }
}

fn tls_port(rig: &Rig) -> u16 {
    match rig.handle.readiness() {
        Readiness::Ready { tls: Some(a), .. } => a.port(),
        other => panic!("no TLS listener: {other:?}"),
    }
}

/// `tests/tls_probe.py`: a TLS handshake trusting `ca`, for `server_name`,
/// with the client certificate in `dir` when `cert`; its client keys go to
/// `keylog`. Returns whether it connected, and what it printed.
async fn probe(
    port: u16,
    ca: &Path,
    server_name: &str,
    client_id: &str,
    keylog: &Path,
    cert: Option<&Path>,
) -> (bool, String) {
    let mut args: Vec<String> = vec![
        port.to_string(),
        ca.display().to_string(),
        server_name.into(),
        client_id.into(),
        keylog.display().to_string(),
    ];
    if let Some(dir) = cert {
        args.push(dir.join("client.pem").display().to_string());
        args.push(dir.join("client.key").display().to_string());
    }
    python("tls_probe.py", &args, 30).await
}

/// A client without a certificate that trusts `ca` and asks for
/// `server_name`: its handshake fails, and the tap keeps it as a failed TLS
/// connection whose reason contains `reason`. What the client printed.
async fn refused(
    rig: &mut Rig,
    ca: &Path,
    server_name: &str,
    client_id: &str,
    keylog: &Path,
    reason: &str,
) -> String {
    let (ok, out) = probe(tls_port(rig), ca, server_name, client_id, keylog, None).await;
    assert!(!ok, "{client_id} must not connect: {out}");
    rig.wait_for(&format!("{client_id}'s failed connection"), 10, |c| {
        failed_with(c, "tls", reason)
    })
    .await;
    out
}

/// Whether a failed connection from `scheme` has a reason containing `needle`.
fn failed_with(c: &Capture, scheme: &str, needle: &str) -> bool {
    c.failed_connections.iter().any(|f| {
        f.scheme == scheme && matches!(&f.reason, CloseReason::Error(w) if w.contains(needle))
    })
}

fn failed_list(c: &Capture) -> String {
    c.failed_connections
        .iter()
        .map(|f| format!("{}: {}\n", f.origin(), f.reason.label()))
        .collect()
}

/// Lines of an SSLKEYLOGFILE, without its comments.
fn key_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_show_their_facts_keys_are_logged_and_failed_handshakes_name_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start_with(EngineConfig {
        tls: Some(tls_options(dir.path())),
        ..EngineConfig::default()
    })
    .await;
    let port = tls_port(&rig);
    let ca = dir.path().join("ca.pem");
    let client_keys = dir.path().join("client-keys.log");

    // A client that trusts the CA, sends SNI and presents the generated client certificate.
    let (ok, out) = probe(
        port,
        &ca,
        "localhost",
        "probe-ok",
        &client_keys,
        Some(dir.path()),
    )
    .await;
    assert!(ok && out.contains("connack 0"), "{out}");
    rig.wait_for("the TLS client's session", 10, |c| {
        c.sessions
            .get("probe-ok")
            .is_some_and(|s| s.last_disconnect() == Some(&CloseReason::Graceful))
    })
    .await;
    let s = &rig.model.capture.sessions["probe-ok"];
    assert_eq!(s.scheme(), "tls");
    let t = s
        .link
        .as_ref()
        .and_then(|l| l.tls.clone())
        .expect("the TLS session is on the session");
    assert_eq!(t.version, "TLS 1.3", "{t:?}");
    assert!(t.cipher.starts_with("TLS13_"), "{t:?}");
    assert_eq!(t.sni.as_deref(), Some("localhost"));
    assert_eq!(t.client_cert.as_deref(), Some("CN=mqtt-workbench client"));

    // The tap's key log has what OpenSSL logged on its side: Wireshark can
    // decrypt the session with it.
    let server = key_lines(&dir.path().join("server-keys.log"));
    let client = key_lines(&client_keys);
    assert!(!client.is_empty(), "OpenSSL wrote no keys");
    for line in &client {
        assert!(server.contains(line), "{line} missing from {server:#?}");
    }
    for line in &server {
        let parts: Vec<&str> = line.split(' ').collect();
        assert!(
            parts.len() == 3
                && parts[0]
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && parts[1].len() == 64
                && parts[1..]
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())),
            "not an SSLKEYLOGFILE line: {line}"
        );
    }
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert!(
            server.iter().any(|l| l.starts_with(label)),
            "{label}: {server:#?}"
        );
    }

    // A client that trusts another CA.
    let other = tempfile::tempdir().unwrap();
    mqtt_workbench::tls::setup(&TlsOptions::generated(
        "127.0.0.1:0".parse().expect("an address"),
        other.path().into(),
    ))
    .expect("a second CA");
    let out = refused(
        &mut rig,
        &other.path().join("ca.pem"),
        "localhost",
        "probe-other-ca",
        &client_keys,
        "alert unknown_ca",
    )
    .await;
    assert!(out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");

    // A client that trusts a namesake of the tap's CA (same name, another key).
    let der = mqtt_workbench::tls::load_certs(&ca).expect("the CA");
    let name = mqtt_workbench::tls::subject(der[0].as_ref());
    let namesake = namesake_ca(
        name.strip_prefix("CN=").expect("a CN"),
        &other.path().join("namesake.pem"),
    )
    .expect("a namesake CA");
    refused(
        &mut rig,
        &namesake,
        "localhost",
        "probe-namesake",
        &client_keys,
        "a different CA of the same name",
    )
    .await;

    // A client that connects to a name the certificate does not carry.
    refused(
        &mut rig,
        &ca,
        "wrong.example",
        "probe-wrong-host",
        &client_keys,
        "connect to a name the certificate carries",
    )
    .await;

    // A TLS client at the plain MQTT port.
    let out = mosquitto(
        "mosquitto_pub",
        "311",
        rig.port(),
        &["--cafile", ca.to_str().unwrap(), "-t", "x", "-m", "y"],
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    rig.wait_for("TLS on the plain port, as a failed connection", 10, |c| {
        failed_with(c, "tcp", "a TLS handshake on a plain MQTT port")
    })
    .await;
    let c = &rig.model.capture;
    assert!(c.failed_total >= 4, "{}", failed_list(c));
    // None of them became a session.
    assert!(
        ["probe-other-ca", "probe-namesake", "probe-wrong-host"]
            .iter()
            .all(|id| !c.sessions.contains_key(*id)),
        "{:?}",
        c.sessions.keys().collect::<Vec<_>>()
    );
}

/// A CA named `cn` (another key), written to `path`.
fn namesake_ca(cn: &str, path: &Path) -> anyhow::Result<PathBuf> {
    let key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, cn);
    std::fs::write(path, ca.self_signed(&key)?.pem())?;
    Ok(path.to_path_buf())
}

/// A CA and an expired server certificate it signed, written to `dir`.
fn expired_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "expired test CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = leaf.signed_by(&key, &issuer)?;
    let paths = (
        dir.join("expired-ca.pem"),
        dir.join("expired.pem"),
        dir.join("expired.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem())?;
    std::fs::write(&paths.1, cert.pem())?;
    std::fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_named_as_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = expired_certificate(dir.path()).expect("an expired certificate");
    let mut rig = Rig::start_with(EngineConfig {
        tls: Some(TlsOptions {
            cert: Some(cert),
            key: Some(key),
            ..TlsOptions::generated(
                "127.0.0.1:0".parse().expect("an address"),
                dir.path().into(),
            )
        }),
        ..EngineConfig::default()
    })
    .await;
    let keys = dir.path().join("client-keys.log");
    let out = refused(
        &mut rig,
        &ca,
        "localhost",
        "probe-expired",
        &keys,
        "certificate_expired",
    )
    .await;
    assert!(out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");
}

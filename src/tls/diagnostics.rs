//! What the tap tells about a TLS connection: the session a handshake made
//! (shown on the client's session), why a handshake failed in words a user
//! can act on, and the session keys for Wireshark (`--tls-keylog`).

use std::io::Write;
use std::path::Path;

use rustls::AlertDescription;

/// Writes TLS secrets in the SSLKEYLOGFILE format NSS defined and Wireshark
/// reads (`<label> <client random, hex> <secret, hex>` a line), appending.
pub struct KeyLogFile {
    file: parking_lot::Mutex<std::fs::File>,
}

impl KeyLogFile {
    pub fn create(path: &Path) -> std::io::Result<KeyLogFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(KeyLogFile {
            file: parking_lot::Mutex::new(file),
        })
    }
}

impl std::fmt::Debug for KeyLogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLogFile")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        // One write a line: a reader never sees half of one.
        if let Err(e) = self.file.lock().write_all(line.as_bytes()) {
            tracing::warn!("--tls-keylog: {e}");
        }
    }
}

/// A certificate's subject, `CN=…, O=…` (or why it could not be read).
pub fn subject(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert.subject().to_string(),
        Err(e) => format!("(unreadable certificate: {e})"),
    }
}

/// Why a server handshake failed, as a user can act on it.
pub fn handshake_failure(e: &std::io::Error) -> String {
    let why = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(AlertDescription::UnknownCA)) => {
            "the client does not trust the tap's certificate (alert unknown_ca): \
             give the client the workbench's CA file (ca.pem, shown in the Broker menu)"
                .to_string()
        }
        Some(rustls::Error::AlertReceived(
            a @ (AlertDescription::BadCertificate | AlertDescription::CertificateUnknown),
        )) => format!(
            "the client refused the tap's certificate (alert {a:?}): does it trust the CA, \
             and connect to a name the certificate carries (localhost, 127.0.0.1, ::1)?"
        ),
        Some(rustls::Error::AlertReceived(AlertDescription::DecryptError)) => {
            "the client could not verify the signature on the tap's certificate (alert \
             decrypt_error): it trusts a different CA of the same name; give it this \
             workbench's CA file (ca.pem, shown in the Broker menu)"
                .to_string()
        }
        Some(rustls::Error::AlertReceived(AlertDescription::CertificateExpired)) => {
            "the client says the tap's certificate has expired (alert certificate_expired)"
                .to_string()
        }
        Some(rustls::Error::AlertReceived(a)) => {
            format!("the client ended the handshake with alert {a:?}")
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            "the client presented no certificate, and this listener requires one \
             (--tls-require-client-cert)"
                .to_string()
        }
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("the client's certificate was refused: {c}")
        }
        Some(rustls::Error::PeerIncompatible(p)) => {
            format!("the client and the tap share no TLS version or cipher suite ({p:?})")
        }
        Some(rustls::Error::InvalidMessage(m)) => {
            format!("the client does not speak TLS here ({m:?})")
        }
        _ => e.to_string(),
    };
    format!("TLS handshake failed: {why}")
}

/// Whether the first byte a client sent to a TLS port starts a TLS
/// handshake (a record of type 22); if not, what the client did instead.
pub fn not_tls(first: u8, ws_listener: bool) -> Option<String> {
    let port = if ws_listener {
        "a wss:// port"
    } else {
        "a TLS port"
    };
    match first {
        0x16 => None,
        0x10 => Some(format!(
            "plain MQTT on {port}: the client sent a CONNECT without starting TLS; \
             turn TLS on in the client (mqtts://) or connect it to the plain port"
        )),
        b'G' => Some(format!(
            "a plain HTTP request on {port}: a ws:// client connects to the WebSocket \
             listener (--ws), a wss:// client to this one"
        )),
        b => Some(format!(
            "the client does not speak TLS on {port} (first byte 0x{b:02x}; a TLS handshake starts with 0x16)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_tells_plain_mqtt_and_http_from_tls() {
        assert_eq!(not_tls(0x16, false), None);
        assert!(not_tls(0x10, false).is_some_and(|w| w.contains("plain MQTT")));
        assert!(not_tls(b'G', true).is_some_and(|w| w.contains("HTTP") && w.contains("wss")));
    }

    #[test]
    fn keylog_lines_have_the_nss_format() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.log");
        let log = KeyLogFile::create(&path).expect("create");
        rustls::KeyLog::log(&log, "CLIENT_RANDOM", &[0xAB; 32], &[0x01, 0x02]);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("CLIENT_RANDOM {} 0102\n", "ab".repeat(32)));
    }
}

//! MQTT over WebSockets (MQTT 3.1.1 §6, MQTT 5 §6): the tap's `ws://` and
//! `wss://` listeners, virtual devices and external brokers over WebSockets.
//!
//! async-tungstenite does the HTTP upgrade and the WebSocket framing;
//! ws_stream_tungstenite turns the WebSocket into the byte stream MQTT runs
//! on (an MQTT packet may span WebSocket messages and a message may carry
//! several packets, §6.0). Past the handshake a WebSocket client is proxied,
//! decoded, faulted and ruled exactly as a TCP one.

use async_tungstenite::tungstenite::handshake::client::generate_key;
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::wire::WsInfo;

/// A byte stream of any kind (the WebSocket's, once it is open).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The subprotocols MQTT over WebSockets names (§6.0): `mqtt`, and
/// `mqttv3.1` that older MQTT 3.1 clients send.
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// The path clients use unless told otherwise (MQTT.js, Paho, MQTTX).
pub const DEFAULT_PATH: &str = "/mqtt";

/// The ports a user expects (mosquitto's and EMQX's examples, MQTTX's defaults).
pub const DEFAULT_WS_PORT: u16 = 8083;
pub const DEFAULT_WSS_PORT: u16 = 8084;

/// Which request paths a WebSocket listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsPath {
    /// Any path (as mosquitto does).
    Any,
    /// Only this one; others get HTTP 404 naming it.
    Exact(String),
}

impl Default for WsPath {
    fn default() -> Self {
        WsPath::Exact(DEFAULT_PATH.into())
    }
}

impl WsPath {
    /// `*` for any path, else a path starting with `/`.
    pub fn parse(text: &str) -> Result<WsPath, String> {
        match text {
            "*" => Ok(WsPath::Any),
            p if p.starts_with('/') => Ok(WsPath::Exact(p.to_string())),
            p => Err(format!(
                "--ws-path {p:?}: expected a path starting with \"/\" (like /mqtt), or \"*\" for any path"
            )),
        }
    }

    /// The path to put in a URL for this listener.
    pub fn url_path(&self) -> &str {
        match self {
            WsPath::Any => DEFAULT_PATH,
            WsPath::Exact(p) => p,
        }
    }

    fn serves(&self, path: &str) -> bool {
        match self {
            WsPath::Any => true,
            WsPath::Exact(p) => p == path,
        }
    }
}

/// Bounds per connection: an MQTT frame the tap decodes is at most about
/// 1 MiB (`MAX_FRAME_BYTES`); a WebSocket message may carry a few.
///
/// Buffers sized for many quiet connections rather than one busy one:
/// tungstenite's defaults (a 128 KiB read buffer allocated up front, and up
/// to 128 KiB of writes held until a flush) made an idle WebSocket device
/// cost 258 KiB against 28 KiB for a TCP one (`bench --transport tcp,ws`,
/// README "Benchmarks"). Both grow for a larger message.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(4 * 1024 * 1024))
        .max_frame_size(Some(4 * 1024 * 1024))
}

/// The first subprotocol of ours the client offered, if any.
fn chosen_subprotocol(offered: Option<&http::HeaderValue>) -> Option<&'static str> {
    let offered = offered?.to_str().ok()?;
    SUBPROTOCOLS.into_iter().find(|ours| {
        offered
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case(ours))
    })
}

fn header(req: &Request, name: http::header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
}

/// Answer a client's WebSocket upgrade on `stream`; the MQTT byte stream,
/// and what the request said, or why the handshake failed.
pub async fn accept<S>(stream: S, path: &WsPath) -> Result<(Box<dyn Io>, WsInfo), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut info = WsInfo::default();
    let mut refused = None;
    #[allow(
        clippy::result_large_err,
        reason = "the signature of tungstenite's handshake callback"
    )]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        info.path = req.uri().path().to_string();
        info.origin = header(req, http::header::ORIGIN);
        info.user_agent = header(req, http::header::USER_AGENT);
        if !path.serves(&info.path) {
            let why = format!(
                "WebSocket request for {} refused with HTTP 404: this listener serves {}",
                info.path,
                path.url_path()
            );
            refused = Some(why.clone());
            let mut r = ErrorResponse::new(Some(why));
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            return Err(r);
        }
        let chosen = chosen_subprotocol(req.headers().get(http::header::SEC_WEBSOCKET_PROTOCOL));
        if let Some(p) = chosen {
            resp.headers_mut().insert(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                http::HeaderValue::from_static(p),
            );
        }
        info.subprotocol = chosen.map(str::to_string);
        Ok(resp)
    };
    match async_tungstenite::tokio::accept_hdr_async_with_config(stream, callback, Some(config()))
        .await
    {
        Ok(ws) => Ok((
            Box::new(ws_stream_tungstenite::WsStream::new(ws)) as Box<dyn Io>,
            info,
        )),
        Err(e) => Err(refused.unwrap_or_else(|| format!("WebSocket handshake failed: {e}"))),
    }
}

/// Open a WebSocket to `url` (`ws://host:port/path`; the scheme only names
/// the request, TLS is already in `stream` or not) asking for subprotocol
/// `mqtt`; the MQTT byte stream, or why the server refused.
pub async fn connect<S>(stream: S, url: &str) -> Result<Box<dyn Io>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url}: not a WebSocket URL ({e})"))?;
    let host = uri.authority().map_or("localhost", |a| a.as_str());
    let request = http::Request::builder()
        .uri(url)
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, generate_key())
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOLS[0])
        .body(())
        .map_err(|e| format!("{url}: {e}"))?;
    match async_tungstenite::tokio::client_async_with_config(request, stream, Some(config())).await
    {
        Ok((ws, _response)) => Ok(Box::new(ws_stream_tungstenite::WsStream::new(ws))),
        Err(async_tungstenite::tungstenite::Error::Http(resp)) => Err(format!(
            "{url}: the server refused the WebSocket upgrade with HTTP {}",
            resp.status()
        )),
        Err(e) => Err(format!("{url}: WebSocket handshake failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn paths_parse_and_serve() {
        assert_eq!(WsPath::parse("*"), Ok(WsPath::Any));
        assert!(WsPath::parse("mqtt").is_err());
        let p = WsPath::parse("/mqtt").expect("a path");
        assert!(p.serves("/mqtt") && !p.serves("/"));
        assert!(WsPath::Any.serves("/anything"));
    }

    #[test]
    fn the_mqtt_subprotocol_is_picked_from_a_list() {
        let v = http::HeaderValue::from_static("wamp, MQTT");
        assert_eq!(chosen_subprotocol(Some(&v)), Some("mqtt"));
        let v = http::HeaderValue::from_static("mqttv3.1");
        assert_eq!(chosen_subprotocol(Some(&v)), Some("mqttv3.1"));
        assert_eq!(chosen_subprotocol(None), None);
    }

    #[tokio::test]
    async fn bytes_cross_a_websocket_both_ways_and_a_wrong_path_is_refused() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { accept(b, &WsPath::default()).await });
        let mut client = connect(a, "ws://localhost/mqtt").await.expect("upgrade");
        let (mut served, info) = server.await.expect("task").expect("accepted");
        assert_eq!(info.path, "/mqtt");
        assert_eq!(info.subprotocol.as_deref(), Some("mqtt"));
        client.write_all(&[0x10, 0x02, 0xAB]).await.expect("write");
        client.write_all(&[0xCD]).await.expect("write");
        let mut got = [0u8; 4];
        served.read_exact(&mut got).await.expect("read");
        assert_eq!(got, [0x10, 0x02, 0xAB, 0xCD]);
        served
            .write_all(&[0x20, 0x02, 0, 0])
            .await
            .expect("write back");
        let mut back = [0u8; 4];
        client.read_exact(&mut back).await.expect("read back");
        assert_eq!(back, [0x20, 0x02, 0, 0]);

        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { accept(b, &WsPath::default()).await });
        let err = connect(a, "ws://localhost/other")
            .await
            .err()
            .expect("refused");
        assert!(err.contains("HTTP 404"), "{err}");
        let why = server.await.expect("task").err().expect("refused");
        assert!(why.contains("/other") && why.contains("/mqtt"), "{why}");
    }
}

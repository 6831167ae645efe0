//! A connection's byte stream, whatever carries it: plain TCP, TLS either
//! way, in-process, or a WebSocket over any of these.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ws;

/// One direction of a connection, plain or TLS.
pub(super) type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub(super) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A client or broker connection: plain TCP, TLS, or in-process (a virtual
/// device, or the embedded broker).
pub(super) enum Conn {
    Plain(TcpStream),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Memory(tokio::io::DuplexStream),
    /// MQTT over WebSockets, over any of the others.
    Ws(Box<dyn ws::Io>),
}

impl Conn {
    pub(super) fn split(self) -> (Reader, Writer) {
        match self {
            Conn::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Conn::Server(s) => {
                let (r, w) = tokio::io::split(*s);
                (Box::new(r), Box::new(w))
            }
            Conn::Client(s) => {
                let (r, w) = tokio::io::split(*s);
                (Box::new(r), Box::new(w))
            }
            Conn::Memory(s) => {
                let (r, w) = tokio::io::split(s);
                (Box::new(r), Box::new(w))
            }
            Conn::Ws(s) => {
                let (r, w) = tokio::io::split(s);
                (Box::new(r), Box::new(w))
            }
        }
    }

    pub(super) fn set_nodelay(&self) {
        let tcp = match self {
            Conn::Plain(s) => s,
            Conn::Server(s) => s.get_ref().0,
            Conn::Client(s) => s.get_ref().0,
            // Set on the socket before the WebSocket handshake.
            Conn::Memory(_) | Conn::Ws(_) => return,
        };
        let _ = tcp.set_nodelay(true);
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Server(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Client(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Memory(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Ws(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Server(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Client(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Memory(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Ws(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Server(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Client(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Memory(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Ws(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Server(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Client(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Memory(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Ws(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

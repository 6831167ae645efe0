//! A connection's byte stream, whatever carries it: plain TCP, or anything
//! else boxed (TLS either way, in-process, a WebSocket over any of these).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ws;

/// One direction of a connection.
pub(super) type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub(super) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A client or broker connection.
pub(super) enum Conn {
    /// Kept apart: a socket splits into halves without a lock between them.
    Plain(TcpStream),
    /// TLS, in-process (a virtual device, the embedded broker), WebSockets.
    Boxed(Box<dyn ws::Io>),
}

impl Conn {
    pub(super) fn boxed(io: impl ws::Io + 'static) -> Conn {
        Conn::Boxed(Box::new(io))
    }

    pub(super) fn split(self) -> (Reader, Writer) {
        match self {
            Conn::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Conn::Boxed(s) => {
                let (r, w) = tokio::io::split(s);
                (Box::new(r), Box::new(w))
            }
        }
    }

    fn io(self: Pin<&mut Self>) -> Pin<&mut dyn ws::Io> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s),
            Conn::Boxed(s) => Pin::new(&mut **s),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use std::{
    collections::VecDeque,
    io::{self, ErrorKind},
    pin::Pin,
};
use tokio::time::{error::Elapsed, Duration, Instant, Sleep};

use crate::protocol::{self, Packet, Protocol};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O = {0}")]
    Io(#[from] io::Error),
    #[error("Invalid data = {0}")]
    Protocol(#[from] protocol::Error),
    #[error["Keep alive timeout"]]
    KeepAlive(#[from] Elapsed),
    /// MQTT Workbench patch: the keep alive ran out (see
    /// `Network::read_within_keepalive`).
    #[error["Keep alive timeout: nothing from the client for {0:?}"]]
    KeepAliveExpired(Duration),
}

/// Network transforms packets <-> frames efficiently. It takes
/// advantage of pre-allocation, buffering and vectorization when
/// appropriate to achieve performance
pub struct Network<P> {
    /// Socket for IO
    socket: Box<dyn N>,
    /// Buffered reads
    read: BytesMut,
    /// Buffered writes
    write: BytesMut,
    /// Maximum packet size
    max_incoming_size: usize,
    /// Maximum connection buffer count. TODO: Change this to use bytes for deterministicness
    max_connection_buffer_len: usize,
    /// Keep alive timeout
    keepalive: Duration,
    /// MQTT Workbench patch: when bytes last came from the client, and one
    /// timer for the keep alive, made on the first wait (see
    /// `read_within_keepalive`).
    last_read: Instant,
    keepalive_timer: Option<Pin<Box<Sleep>>>,
    /// Protocol
    protocol: P,
}

impl<P: Protocol> Network<P> {
    pub fn new(
        socket: Box<dyn N>,
        max_incoming_size: usize,
        max_connection_buffer_len: usize,
        protocol: P,
    ) -> Network<P> {
        Network {
            socket,
            // MQTT Workbench patch: start small, grow as frames need (thousands
            // of mostly idle connections a process; a PINGREQ fits).
            read: BytesMut::with_capacity(64),
            write: BytesMut::with_capacity(64),
            max_incoming_size,
            max_connection_buffer_len,
            // Overwritten by keepalive value in connect packet, otherwise we
            // would wait indefinitely until we get a packet / network error
            // when we call read.
            keepalive: Duration::MAX,
            last_read: Instant::now(),
            keepalive_timer: None,
            protocol,
        }
    }

    /// MQTT Workbench patch: whether this link speaks MQTT 5.
    pub fn is_v5(&self) -> bool {
        self.protocol.is_v5()
    }

    pub fn set_keepalive(&mut self, keepalive: u16) {
        // MQTT Workbench patch: the next wait makes the timer anew.
        self.keepalive_timer = None;
        // MQTT Workbench patch (MQTT 3.1.1 §3.1.2.10): 0 turns the keep alive
        // off; upstream made it a zero deadline.
        if keepalive == 0 {
            self.keepalive = Duration::MAX;
            return;
        }
        let keepalive = Duration::from_secs(keepalive as u64);
        self.keepalive = keepalive + keepalive.mul_f32(0.5);
    }

    /// Reads more than 'required' bytes to frame a packet into self.read buffer
    async fn read_bytes(
        socket: &mut Box<dyn N>,
        buf: &mut BytesMut,
        required: usize,
    ) -> io::Result<usize> {
        // TODO: Fix this cancellation bug and write unit test
        let mut total_read = 0;
        loop {
            let read = socket.read_buf(buf).await?;
            if 0 == read {
                let error = if buf.is_empty() {
                    io::Error::new(ErrorKind::ConnectionAborted, "connection closed by peer")
                } else {
                    io::Error::new(ErrorKind::ConnectionReset, "connection reset by peer")
                };

                return Err(error);
            }

            total_read += read;
            if total_read >= required {
                return Ok(total_read);
            }
        }
    }

    /// Waits on network for 1 packet
    pub async fn read(&mut self) -> Result<Packet, Error> {
        loop {
            let required = match Protocol::read_mut(
                &mut self.protocol,
                &mut self.read,
                self.max_incoming_size,
            ) {
                Ok(packet) => return Ok(packet),
                Err(protocol::Error::InsufficientBytes(required)) => required,
                Err(e) => return Err(e.into()),
            };

            // read more packets until a frame can be created. This function
            // blocks until a frame can be created. Use this in a select! branch
            self.read_within_keepalive(required).await?;
        }
    }

    /// MQTT Workbench patch (MQTT 3.1.1 §3.1.2.10 [MQTT-3.1.2-24], MQTT 5
    /// §3.1.2.10 [MQTT-3.1.2-22]): "If the Keep Alive value is non-zero and
    /// the Server does not receive a Control Packet from the Client within one
    /// and a half times the Keep Alive time period, it MUST disconnect".
    /// Upstream wrapped each wait for bytes in a fresh `timeout`, and the link
    /// starts a new wait every time it writes to the client: a client that
    /// went silent while it was sent messages more often than its keep alive
    /// was never disconnected. The deadline now counts from the last bytes
    /// read, and one timer per connection serves every wait, moved later on
    /// every read, instead of a timer made and removed per wait.
    async fn read_within_keepalive(&mut self, required: usize) -> Result<usize, Error> {
        let Some(deadline) = self.last_read.checked_add(self.keepalive) else {
            // Keep alive off (0, or before the CONNECT set it).
            let n = Self::read_bytes(&mut self.socket, &mut self.read, required).await?;
            self.last_read = Instant::now();
            return Ok(n);
        };
        let timer = self
            .keepalive_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        let read = Self::read_bytes(&mut self.socket, &mut self.read, required);
        tokio::pin!(read);
        loop {
            tokio::select! {
                biased;
                n = &mut read => {
                    let now = Instant::now();
                    self.last_read = now;
                    // A later deadline only marks the timer (no lock, no
                    // wake): tokio files it again when the old one comes.
                    timer.as_mut().reset(now + self.keepalive);
                    return Ok(n?);
                }
                () = timer.as_mut() => {
                    let deadline = self.last_read + self.keepalive;
                    if Instant::now() >= deadline {
                        return Err(Error::KeepAliveExpired(self.keepalive));
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Read packets in bulk. This allow replies to be in bulk. This method is used
    /// after the connection is established to read a bunch of incoming packets
    pub fn readv(&mut self, packets: &mut VecDeque<Packet>) -> Result<usize, Error> {
        loop {
            match self
                .protocol
                .read_mut(&mut self.read, self.max_incoming_size)
            {
                Ok(packet) => {
                    packets.push_back(packet);
                    let connection_buffer_length = packets.len();
                    if connection_buffer_length >= self.max_connection_buffer_len {
                        return Ok(connection_buffer_length);
                    }
                }
                Err(protocol::Error::InsufficientBytes(_)) => return Ok(packets.len()),
                Err(e) => return Err(io::Error::new(ErrorKind::InvalidData, e.to_string()).into()),
            }
        }
    }

    pub async fn write(&mut self, packet: Packet) -> Result<(), Error> {
        Protocol::write(&self.protocol, packet, &mut self.write)?;
        self.socket.write_all(&self.write).await?;
        self.write.clear();
        Ok(())
    }

    /// MQTT Workbench patch: the encoded size of `packet` on this link.
    pub fn encoded_len(&self, packet: Packet) -> Result<usize, Error> {
        let mut scratch = BytesMut::new();
        Ok(Protocol::write(&self.protocol, packet, &mut scratch)?)
    }

    pub async fn writev(&mut self, packets: VecDeque<Packet>) -> Result<(), Error> {
        for packet in packets {
            Protocol::write(&self.protocol, packet, &mut self.write)?;
        }
        self.socket.write_all(&self.write).await?;
        self.write.clear();
        Ok(())
    }
}

pub trait N: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T> N for T where T: AsyncRead + AsyncWrite + Unpin + Send {}

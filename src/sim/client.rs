//! A virtual device's MQTT connection: rumqttc's MQTT 3.1.1 or MQTT 5 client
//! and event loop behind one face, with typed errors.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as m5;
use rumqttc::{Event as MqttEvent, Outgoing, Packet};
use tokio::time::sleep;

use super::mqtt::ToRumqttc;

/// A request the client could not queue for its event loop: the queue is
/// full or the loop has ended (rumqttc's error carries the request back; it
/// is dropped here, so the error stays small).
#[derive(Debug, thiserror::Error)]
#[error("the request could not be queued for the connection (queue full or connection ended)")]
pub struct ClientError;

impl From<rumqttc::ClientError> for ClientError {
    fn from(_: rumqttc::ClientError) -> Self {
        ClientError
    }
}

impl From<rumqttc::v5::ClientError> for ClientError {
    fn from(_: rumqttc::v5::ClientError) -> Self {
        ClientError
    }
}

/// Why the connection was lost (rumqttc's error, either protocol). Boxed:
/// rumqttc's errors are over 100 bytes, and the device's task and event
/// loop would keep room for one at every wait (thousands of idle devices).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0}")]
    V4(#[source] Box<rumqttc::ConnectionError>),
    #[error("{0}")]
    V5(#[source] Box<rumqttc::v5::ConnectionError>),
}

impl From<rumqttc::ConnectionError> for ConnectionError {
    fn from(e: rumqttc::ConnectionError) -> Self {
        ConnectionError::V4(Box::new(e))
    }
}

impl From<rumqttc::v5::ConnectionError> for ConnectionError {
    fn from(e: rumqttc::v5::ConnectionError) -> Self {
        ConnectionError::V5(Box::new(e))
    }
}

/// The device's client: rumqttc's MQTT 3.1.1 or MQTT 5 one.
pub(super) enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A message the device received, in either protocol.
pub(super) enum Received {
    V4(rumqttc::Publish),
    V5(m5::Publish),
}

impl Received {
    pub(super) fn topic(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Received::V4(p) => std::borrow::Cow::Borrowed(&p.topic),
            Received::V5(p) => String::from_utf8_lossy(&p.topic),
        }
    }

    pub(super) fn payload(&self) -> &[u8] {
        match self {
            Received::V4(p) => &p.payload,
            Received::V5(p) => &p.payload,
        }
    }

    pub(super) fn qos(&self) -> u8 {
        match self {
            Received::V4(p) => p.qos as u8,
            Received::V5(p) => p.qos as u8,
        }
    }

    pub(super) fn retain(&self) -> bool {
        match self {
            Received::V4(p) => p.retain,
            Received::V5(p) => p.retain,
        }
    }

    /// MQTT 5 user properties (none in 3.1.1).
    pub(super) fn user_properties(&self) -> Vec<(String, String)> {
        match self {
            Received::V4(_) => Vec::new(),
            Received::V5(p) => p
                .properties
                .as_ref()
                .map(|pr| pr.user_properties.clone())
                .unwrap_or_default(),
        }
    }

    /// MQTT 5 request/response: where to answer, and the correlation data to echo.
    pub(super) fn response(&self) -> Option<(String, Option<Bytes>)> {
        match self {
            Received::V4(_) => None,
            Received::V5(p) => {
                let props = p.properties.as_ref()?;
                Some((
                    props.response_topic.clone()?,
                    props.correlation_data.clone(),
                ))
            }
        }
    }
}

/// What a device's event loop reports, for either protocol.
pub(super) enum NetEvent {
    ConnAck,
    Publish(Box<Received>),
    DisconnectSent,
    Other,
}

impl Client {
    pub(super) fn publish(
        &self,
        topic: String,
        qos: crate::scenario::Qos,
        retain: bool,
        payload: Vec<u8>,
        props: Option<m5::PublishProperties>,
    ) -> Result<(), ClientError> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, qos.to_rumqttc(), retain, payload)
                .map_err(ClientError::from),
            Client::V5(c) => match props {
                Some(props) => c.try_publish_with_properties(
                    topic,
                    qos.to_rumqttc_v5(),
                    retain,
                    payload,
                    props,
                ),
                None => c.try_publish(topic, qos.to_rumqttc_v5(), retain, payload),
            }
            .map_err(ClientError::from),
        }
    }

    pub(super) fn subscribe(&self, filter: String, qos: crate::scenario::Qos) {
        match self {
            Client::V4(c) => drop(c.try_subscribe(filter, qos.to_rumqttc())),
            Client::V5(c) => drop(c.try_subscribe(filter, qos.to_rumqttc_v5())),
        }
    }

    pub(super) fn ack(&self, p: &Received) -> bool {
        match (self, p) {
            (Client::V4(c), Received::V4(p)) => c.try_ack(p).is_ok(),
            (Client::V5(c), Received::V5(p)) => c.try_ack(p).is_ok(),
            _ => false,
        }
    }

    pub(super) fn disconnect(&self) -> bool {
        match self {
            Client::V4(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        }
    }
}

/// rumqttc's event loop for the device's protocol.
pub(super) enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// One protocol's event loop, as [`Net`] drives it.
trait NetPoll: Send + 'static {
    fn poll_event(
        &mut self,
    ) -> impl std::future::Future<Output = Result<NetEvent, ConnectionError>> + Send;
}

impl NetPoll for Box<rumqttc::EventLoop> {
    async fn poll_event(&mut self) -> Result<NetEvent, ConnectionError> {
        self.poll()
            .await
            .map_err(ConnectionError::from)
            .map(|ev| match ev {
                MqttEvent::Incoming(Packet::ConnAck(_)) => NetEvent::ConnAck,
                MqttEvent::Incoming(Packet::Publish(p)) => {
                    NetEvent::Publish(Box::new(Received::V4(p)))
                }
                MqttEvent::Outgoing(Outgoing::Disconnect) => NetEvent::DisconnectSent,
                _ => NetEvent::Other,
            })
    }
}

impl NetPoll for Box<rumqttc::v5::EventLoop> {
    async fn poll_event(&mut self) -> Result<NetEvent, ConnectionError> {
        use rumqttc::v5::Event as E5;
        self.poll()
            .await
            .map_err(ConnectionError::from)
            .map(|ev| match ev {
                E5::Incoming(m5::Packet::ConnAck(_)) => NetEvent::ConnAck,
                E5::Incoming(m5::Packet::Publish(p)) => {
                    NetEvent::Publish(Box::new(Received::V5(p)))
                }
                E5::Outgoing(Outgoing::Disconnect) => NetEvent::DisconnectSent,
                _ => NetEvent::Other,
            })
    }
}

/// rumqttc's event loop, driven from inside the device's own task (one task
/// per device, not two: a publish goes out, and a message comes in, without
/// waking a second task). `poll()` connects inside itself, so it must never
/// be cancelled by a `select!` (a slow CONNECT would restart forever): the
/// driving future lives here, boxed, and [`Net::next`] only polls it.
/// Polling after an error reconnects, after a pause. One future type per
/// protocol: an MQTT 3.1.1 device's is not sized for MQTT 5's larger event
/// loop. Dropping it (or [`Net::close`]) closes the connection at once.
pub(super) struct Net {
    drive: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The event `drive` has read and the device has not taken yet. (Both
    /// are polled by the device's task, so no channel and no waker: `next`
    /// takes the event before it polls `drive` again.)
    slot: Slot,
}

type Slot = std::sync::Arc<parking_lot::Mutex<Option<Result<NetEvent, ConnectionError>>>>;

impl Net {
    pub(super) fn new(el: EventLoop) -> Net {
        let slot = Slot::default();
        let drive: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match el {
            EventLoop::V4(el) => Box::pin(drive(el, slot.clone())),
            EventLoop::V5(el) => Box::pin(drive(el, slot.clone())),
        };
        Net {
            drive: Some(drive),
            slot,
        }
    }

    /// The next event the device reads; meanwhile the event loop runs.
    /// None once closed. Cancel-safe: an event is taken only when returned.
    pub(super) async fn next(&mut self) -> Option<Result<NetEvent, ConnectionError>> {
        std::future::poll_fn(|cx| {
            if let Some(ev) = self.slot.lock().take() {
                return Poll::Ready(Some(ev));
            }
            let Some(drive) = self.drive.as_mut() else {
                return Poll::Ready(None);
            };
            // `drive` never ends; it waits for the device to take an event.
            if drive.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            match self.slot.lock().take() {
                Some(ev) => Poll::Ready(Some(ev)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Close the connection without another packet (the socket just closes).
    pub(super) fn close(&mut self) {
        self.drive = None;
    }
}

async fn drive<E: NetPoll>(mut el: E, slot: Slot) {
    loop {
        let r = el.poll_event().await;
        let failed = r.is_err();
        // Nobody reads the rest (an outgoing PUBLISH, a PUBACK, a PINGRESP):
        // passing them on would wake the device once more for every message.
        if matches!(r, Ok(NetEvent::Other)) {
            continue;
        }
        *slot.lock() = Some(r);
        // Until the device took it: `Net::next` takes the event before it
        // polls this future again, so no waker is needed here.
        std::future::poll_fn(|_| {
            if slot.lock().is_some() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        if failed {
            sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Send DISCONNECT and wait until it is on the wire (at most 2 s).
pub(super) async fn graceful_disconnect(client: &Client, net: &mut Net) {
    if !client.disconnect() {
        return;
    }
    // Boxed: rare, and a device's task should not carry it while it idles.
    let _ = Box::pin(tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match net.next().await {
                Some(Ok(NetEvent::DisconnectSent)) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }))
    .await;
}

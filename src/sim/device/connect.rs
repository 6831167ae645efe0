//! How a device connects: rumqttc's options for its protocol, address,
//! transport (TLS, WebSockets), credentials and will.

use std::sync::Arc;

use rumqttc::v5::mqttbytes::v5 as m5;
use rumqttc::{LastWill, MqttOptions};

use super::{Device, INFLIGHT};
use crate::scenario::{Protocol, Transport, expand};
use crate::sim::client::{Client, EventLoop};
use crate::sim::generators::{DeviceCtx, PayloadSampler};
use crate::sim::mqtt::ToRumqttc;
use crate::sim::sparkplug::Out;

impl Device {
    /// A new client and its event loop (polled from the device's task, see `Net`), for the device's protocol.
    pub(super) fn connect(&mut self) -> (Client, EventLoop) {
        let will = self.will();
        match self.plan.spec.protocol {
            Protocol::V311 => {
                let o = self.options(will);
                let (client, mut el) = rumqttc::AsyncClient::new(o, 256);
                let mut net = el.network_options();
                net.set_connection_timeout(30);
                el.set_network_options(net);
                (Client::V4(client), EventLoop::V4(Box::new(el)))
            }
            Protocol::V5 => {
                let mut o = self.options_v5(will);
                let mut net = rumqttc::NetworkOptions::new();
                net.set_connection_timeout(30);
                o.set_network_options(net);
                let (client, el) = rumqttc::v5::AsyncClient::new(o, 256);
                (Client::V5(client), EventLoop::V5(Box::new(el)))
            }
        }
    }

    /// The will of the next CONNECT: a Sparkplug role's (an edge node's
    /// `bdSeq` moves on), or the scenario's, rendered from the device's seed.
    fn will(&mut self) -> Option<Out> {
        if let Some(w) = self.sparkplug_will() {
            return Some(w);
        }
        let spec = &self.plan.spec;
        let w = spec.will.as_ref()?;
        let mut sampler = PayloadSampler::new(&w.payload, 1.0);
        let mut ctx = DeviceCtx::new(
            self.plan.seed,
            &self.plan.client_id,
            self.plan.index,
            spec.vars.clone(),
            self.ctx.state.clone(),
        );
        Some(Out {
            topic: expand(&w.topic, self.plan.index, &self.plan.client_id),
            payload: sampler.render(&mut ctx, 2, None),
            qos: w.qos,
            retain: w.retain,
        })
    }

    /// Host, port and TLS configuration this device connects with (over a
    /// socket: MQTT over TLS; WebSocket devices go in-process, see `connector`).
    fn address(&self) -> (&str, u16, Option<Arc<rustls::ClientConfig>>) {
        let t = &self.plan.target;
        match (&t.tls, self.plan.spec.tls, self.plan.spec.transport) {
            (Some(tls), true, Transport::Tcp) => (&t.host, tls.port, Some(tls.config.clone())),
            _ => (&t.host, t.port, None),
        }
    }

    /// In-process to the tap (no socket), when the target offers it. A
    /// WebSocket device opens its stream with the WebSocket (and TLS)
    /// handshakes a browser would make, and the tap answers them as its
    /// ws:// and wss:// listeners do.
    fn connector(&self) -> Option<rumqttc::Connector> {
        let door = self.plan.target.door.clone()?;
        let spec = &self.plan.spec;
        let kind = match (spec.transport, spec.tls) {
            (Transport::Tcp, _) => crate::tap::DoorKind::Mqtt,
            (Transport::Ws, false) => crate::tap::DoorKind::Ws,
            (Transport::Ws, true) | (Transport::Wss, _) => crate::tap::DoorKind::Wss,
        };
        let tls = match kind {
            // The tap's generated certificate carries localhost.
            crate::tap::DoorKind::Wss => self
                .plan
                .target
                .tls
                .as_ref()
                .zip(crate::tls::server_name("localhost").ok())
                .map(|(t, name)| crate::tap::UpstreamTls {
                    config: t.config.clone(),
                    name,
                }),
            _ => None,
        };
        let url = match kind {
            crate::tap::DoorKind::Mqtt => None,
            crate::tap::DoorKind::Ws => Some("ws://localhost/mqtt"),
            crate::tap::DoorKind::Wss => Some("wss://localhost/mqtt"),
        };
        Some(rumqttc::Connector(Arc::new(move || {
            let stream = door.connect_as(kind);
            let tls = tls.clone();
            Box::pin(async move {
                let stream = stream?;
                if kind == crate::tap::DoorKind::Mqtt {
                    return Ok(Box::new(stream) as Box<dyn rumqttc::AsyncReadWrite>);
                }
                // connect_as refused wss without TLS, so `tls` is there for wss.
                crate::tap::client_handshakes(stream, tls.as_ref(), url)
                    .await
                    .map(|io| Box::new(io) as Box<dyn rumqttc::AsyncReadWrite>)
                    .map_err(|e| {
                        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string())
                    })
            })
        })))
    }

    /// The device's own credentials, or the workbench's default ones.
    fn credentials(&self) -> Option<(String, String)> {
        let spec = &self.plan.spec;
        match &spec.username {
            Some(u) => Some((u.clone(), spec.password.clone().unwrap_or_default())),
            None => self.plan.target.credentials.clone(),
        }
    }

    fn options_v5(&self, will: Option<Out>) -> rumqttc::v5::MqttOptions {
        let spec = &self.plan.spec;
        let (host, port, tls) = self.address();
        let mut o = rumqttc::v5::MqttOptions::new(&self.plan.client_id, host, port);
        if let Some(t) = tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(t),
            ));
        } else if let Some(c) = self.connector() {
            o.set_connector(c);
        }
        o.set_keep_alive(spec.keep_alive.0);
        o.set_clean_start(spec.clean_session);
        o.set_max_packet_size(Some(1024 * 1024));
        // rumqttc sizes its inflight tables by the broker's Receive Maximum
        // (65535 from rumqttd): about 13 MiB per device. See INFLIGHT.
        o.set_outgoing_inflight_upper_limit(INFLIGHT);
        o.set_manual_acks(true);
        if let Some(e) = spec.session_expiry {
            o.set_session_expiry_interval(Some(e.0.as_secs().min(u32::MAX as u64) as u32));
        }
        if !spec.user_properties.is_empty() {
            o.set_user_properties(spec.user_properties.clone());
        }
        if let Some(w) = will {
            let qos = w.qos.to_rumqttc_v5();
            o.set_last_will(m5::LastWill::new(w.topic, w.payload, qos, w.retain, None));
        }
        if let Some((u, p)) = self.credentials() {
            o.set_credentials(u, p);
        }
        o
    }

    fn options(&self, will: Option<Out>) -> MqttOptions {
        let spec = &self.plan.spec;
        let (host, port, tls) = self.address();
        let mut o = MqttOptions::new(&self.plan.client_id, host, port);
        if let Some(t) = tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(t),
            ));
        } else if let Some(c) = self.connector() {
            o.set_connector(c);
        }
        o.set_keep_alive(spec.keep_alive.0);
        o.set_clean_session(spec.clean_session);
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        o.set_inflight(INFLIGHT);
        // We acknowledge ourselves, so a device can stop acknowledging on command.
        o.set_manual_acks(true);
        if let Some(w) = will {
            o.set_last_will(LastWill::new(
                w.topic,
                w.payload,
                w.qos.to_rumqttc(),
                w.retain,
            ));
        }
        if let Some((u, p)) = self.credentials() {
            o.set_credentials(u, p);
        }
        o
    }
}

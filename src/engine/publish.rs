//! Messages published by hand: the workbench's own MQTT client, publishing
//! as a virtual device, clearing retained messages.

use super::*;

impl Engine {
    /// The workbench's own MQTT client, connected through the tap on first
    /// use (so what it sends shows in every inspector like any client's).
    /// An MQTT 5 client, so messages published by hand can carry properties.
    pub(super) fn own_client(&mut self) -> rumqttc::v5::AsyncClient {
        if let Some((client, _)) = &self.own_client {
            return client.clone();
        }
        let tap = self.tap.local_addr();
        let mut opts = rumqttc::v5::MqttOptions::new(
            crate::command::WORKBENCH_CLIENT_ID,
            tap.ip().to_string(),
            tap.port(),
        );
        opts.set_keep_alive(Duration::from_secs(30));
        // As large as the tap and the broker take (rumqttc's default is 10 KiB).
        opts.set_max_packet_size(Some(1024 * 1024));
        // rumqttc sizes its inflight tables by the broker's Receive Maximum (65,535).
        opts.set_outgoing_inflight_upper_limit(100);
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 256);
        let task = tokio::spawn(async move {
            loop {
                if el.poll().await.is_err() {
                    // Reconnects after a broker restart; paced.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        self.own_client = Some((client.clone(), task));
        client
    }

    pub(super) fn publish(&mut self, mut req: crate::command::PublishRequest) {
        use crate::command::Publisher;
        // A payload from a file is read off the async workers, then published.
        if let Some(path) = req.payload_file.take() {
            let (sink, commands) = (self.sink.clone(), self.commands.clone());
            tokio::spawn(async move {
                let read = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || -> Result<Vec<u8>, EngineError> {
                        let len = std::fs::metadata(&path)
                            .map_err(EngineError::file(&path))?
                            .len();
                        if len > crate::tap::MAX_FRAME_BYTES as u64 - 1024 {
                            return Err(EngineError::TooLarge { path, len });
                        }
                        std::fs::read(&path).map_err(EngineError::file(&path))
                    }
                })
                .await;
                match read {
                    Ok(Ok(bytes)) => {
                        req.payload = bytes::Bytes::from(bytes);
                        if let Some(tx) = commands.upgrade() {
                            let _ = tx.send(Command::Publish(req)).await;
                        }
                    }
                    Ok(Err(e)) => sink.send(Event::Notice {
                        error: true,
                        text: e.to_string(),
                    }),
                    Err(e) => sink.send(Event::Notice {
                        error: true,
                        text: e.to_string(),
                    }),
                }
            });
            return;
        }
        let what = format!(
            "{} B to {} (QoS {}{})",
            req.payload.len(),
            req.topic,
            req.qos,
            if req.retain { ", retained" } else { "" }
        );
        match req.from.clone() {
            Publisher::Workbench => {
                let qos = crate::scenario::Qos(req.qos.min(2)).to_rumqttc_v5();
                let client = self.own_client();
                let sent = if req.properties.is_empty() {
                    client.try_publish(req.topic, qos, req.retain, req.payload)
                } else {
                    client.try_publish_with_properties(
                        req.topic,
                        qos,
                        req.retain,
                        req.payload,
                        crate::sim::mqtt::publish_properties(&req.properties),
                    )
                };
                match sent {
                    // Queued on the workbench's connection; the log shows when it went out.
                    Ok(()) => self.notice(false, format!("publishing {what}")),
                    Err(e) => self.notice(true, format!("cannot publish {what}: {e}")),
                }
            }
            Publisher::Device(id) => {
                let Some(d) = self.devices.iter_mut().find(|d| d.client_id == id) else {
                    return self.notice(true, format!("no virtual device \"{id}\" is running"));
                };
                let (answer, answered) = tokio::sync::oneshot::channel();
                if d.mail
                    .try_send(Mail::Publish(Box::new((req, answer))))
                    .is_err()
                {
                    return self.notice(true, format!("{id} is busy: try again"));
                }
                let sink = self.sink.clone();
                tokio::spawn(async move {
                    let (error, text) =
                        match tokio::time::timeout(Duration::from_secs(2), answered).await {
                            Ok(Ok(Ok(()))) => (false, format!("{id} is publishing {what}")),
                            Ok(Ok(Err(e))) => (true, format!("cannot publish {what}: {e}")),
                            _ => (
                                true,
                                format!("cannot publish {what}: {id} did not answer (offline?)"),
                            ),
                        };
                    sink.send(Event::Notice { error, text });
                });
            }
        }
    }

    /// An empty retained message on each topic clears what the broker holds.
    pub(super) fn clear_retained(&mut self, topics: Vec<String>) {
        let client = self.own_client();
        let sink = self.sink.clone();
        tokio::spawn(async move {
            let n = topics.len();
            let mut failed = 0;
            for t in topics {
                // Awaited: a long list waits for room in the client's queue (not
                // forever: the broker may be stopped).
                let sent = tokio::time::timeout(
                    Duration::from_secs(5),
                    client.publish(
                        t,
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        true,
                        Vec::new(),
                    ),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    failed += 1;
                }
            }
            let (error, text) = if failed == 0 {
                (
                    false,
                    format!(
                        "cleared {n} retained message{}",
                        if n == 1 { "" } else { "s" }
                    ),
                )
            } else {
                (
                    true,
                    format!("cleared {} of {n} retained messages", n - failed),
                )
            };
            sink.send(Event::Notice { error, text });
        });
    }
}

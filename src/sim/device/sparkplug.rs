//! A device's Sparkplug B role on its task: the will of each CONNECT, the
//! subscriptions and births on CONNACK, commands and STATE as they arrive,
//! periodic DATA (`sim::sparkplug` decides what; this sends it).

use tokio::time::Instant;

use super::Device;
use crate::sim::client::{Client, Received};
use crate::sim::sparkplug::Out;

impl Device {
    /// The will of the next CONNECT (an edge node's `bdSeq` moves on).
    pub(super) fn sparkplug_will(&mut self) -> Option<Out> {
        self.sparkplug.as_mut().map(|r| r.will())
    }

    /// CONNACK: subscribe, then publish the births.
    pub(super) fn sparkplug_connected(&mut self, client: &Client) {
        let Some(role) = &mut self.sparkplug else {
            return;
        };
        for (filter, qos) in role.subscriptions() {
            client.subscribe(filter, qos);
        }
        let outs = role.on_connected(&mut self.ctx, Instant::now());
        self.send(client, outs);
    }

    /// Before an intentional DISCONNECT: NDEATH or STATE offline, as the will would have said.
    pub(super) fn sparkplug_farewell(&mut self, client: &Client) {
        if let Some(out) = self.sparkplug.as_mut().and_then(|r| r.farewell()) {
            self.send(client, vec![out]);
        }
    }

    pub(super) fn sparkplug_disconnected(&mut self) {
        if let Some(r) = &mut self.sparkplug {
            r.on_disconnected();
        }
    }

    /// A message for the role; true when the device must disconnect and
    /// connect again (its primary host went offline).
    pub(super) fn sparkplug_message(&mut self, client: &Client, msg: &Received) -> bool {
        let Some(role) = &mut self.sparkplug else {
            return false;
        };
        let reply = role.on_message(&msg.topic(), msg.payload(), &mut self.ctx, Instant::now());
        self.send(client, reply.publish);
        reply.rejoin
    }

    pub(super) fn sparkplug_due(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        self.sparkplug.as_ref().and_then(|r| r.next_due())
    }

    pub(super) fn sparkplug_fire(&mut self, client: &Client) {
        let Some(role) = &mut self.sparkplug else {
            return;
        };
        let outs = role.fire(&mut self.ctx, Instant::now());
        self.send(client, outs);
    }

    fn send(&mut self, client: &Client, outs: Vec<Out>) {
        for o in outs {
            self.ctx.seq += 1;
            if client
                .publish(o.topic, o.qos, o.retain, o.payload, None)
                .is_err()
            {
                self.failed(false);
            }
        }
    }
}

//! Where devices are: positions read from published JSON payloads that carry
//! latitude and longitude (`{"lat": …, "lon": …}`, or nested one level, as in
//! the drone fleet's `{"position": {"lat": …, "lon": …}}`), kept per client
//! on ingest with a bounded trail, for the fleet map.

use std::collections::{BTreeMap, VecDeque};

use crate::wire::{Direction, PacketKind, WireEvent};

/// Trail points kept per device.
pub const TRAIL: usize = 300;
/// Devices tracked at most.
pub const MAX_DEVICES: usize = 20_000;

#[derive(Debug, Clone, Default)]
pub struct Track {
    /// (lat, lon), oldest first; the last is the current position.
    pub trail: VecDeque<(f64, f64)>,
    pub topic: String,
    pub t_us: u64,
}

#[derive(Debug, Default)]
pub struct Positions {
    pub tracks: BTreeMap<String, Track>,
    /// Bumped on every change (views cache by it).
    pub generation: u64,
    /// Devices not tracked because [`MAX_DEVICES`] were.
    pub over_limit: u64,
}

/// lat/lon of a JSON object, at the top or one level down.
fn lat_lon(v: &serde_json::Value) -> Option<(f64, f64)> {
    let pick = |o: &serde_json::Map<String, serde_json::Value>| {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| o.get(*n).and_then(|x| x.as_f64()))
        };
        Some((
            get(&["lat", "latitude"])?,
            get(&["lon", "lng", "long", "longitude"])?,
        ))
    };
    let o = v.as_object()?;
    pick(o)
        .or_else(|| o.values().filter_map(|x| x.as_object()).find_map(pick))
        .filter(|(lat, lon)| (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon))
}

impl Positions {
    pub fn on_event(&mut self, ev: &WireEvent) {
        if ev.kind != PacketKind::Publish || ev.dir != Direction::ClientToBroker {
            return;
        }
        let Some(payload) = ev.payload.as_deref() else {
            return;
        };
        // Cheap test first: most payloads carry no position.
        if !payload.windows(4).any(|w| w == b"\"lat") {
            return;
        }
        let Some(at) = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .as_ref()
            .and_then(lat_lon)
        else {
            return;
        };
        if !self.tracks.contains_key(&*ev.client_id) && self.tracks.len() >= MAX_DEVICES {
            self.over_limit += 1;
            return;
        }
        let t = self.tracks.entry(ev.client_id.to_string()).or_default();
        if t.trail.len() >= TRAIL {
            t.trail.pop_front();
        }
        t.trail.push_back(at);
        t.topic = ev.topic.as_deref().unwrap_or_default().to_string();
        t.t_us = ev.t_us;
        self.generation += 1;
    }

    pub fn clear(&mut self) {
        self.tracks.clear();
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn positions_come_from_flat_and_nested_json() {
        let mut p = Positions::default();
        for (client, body) in [
            ("car", r#"{"lat": 52.5, "lon": 13.4, "battery": 80}"#),
            (
                "drone",
                r#"{"position": {"lat": 48.85, "lon": 2.29, "alt": 120}, "mode": "x"}"#,
            ),
            ("sensor", r#"{"temp": 21.5}"#),
            ("bogus", r#"{"lat": 400, "lon": 13.4}"#),
        ] {
            let mut ev = WireEvent::new(
                1,
                1,
                Arc::from(client),
                Direction::ClientToBroker,
                PacketKind::Publish,
            );
            ev.topic = Some(Arc::from("t"));
            ev.payload = Some(bytes::Bytes::from(body.to_string()));
            p.on_event(&ev);
        }
        assert_eq!(p.tracks.len(), 2);
        assert_eq!(p.tracks["car"].trail.back(), Some(&(52.5, 13.4)));
        assert_eq!(p.tracks["drone"].trail.back(), Some(&(48.85, 2.29)));
    }
}

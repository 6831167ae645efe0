//! Seeded value generators and payload rendering.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Number, Value};

use crate::scenario::{Cond, Gen, Payload};

/// What a device knows while rendering: identity, vars, state, a seeded RNG.
pub struct DeviceCtx {
    /// 1-based index within its fleet.
    pub index: u32,
    pub id: String,
    pub vars: BTreeMap<String, f64>,
    pub state: String,
    /// Messages published so far.
    pub seq: u64,
    /// Sparkplug B sequence number of the next payload (0–255; a BIRTH starts at 0).
    pub sparkplug_seq: u64,
    /// Made on the first draw ([`DeviceCtx::rng`]): a ChaCha state is about
    /// 0.3 KiB, and a device whose generators draw nothing never needs one.
    rng: Option<Box<ChaCha8Rng>>,
    rng_seed: u64,
}

/// A uniform draw in `lo..=hi`: `lo` when the range is empty, the middle
/// when its width is not finite (rand panics on both; a scenario's numbers,
/// edited live too, must not stop a device).
fn draw(ctx: &mut DeviceCtx, lo: f64, hi: f64) -> f64 {
    // Empty, or a bound is NaN.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return lo;
    }
    if !(hi - lo).is_finite() {
        let mid = lo / 2.0 + hi / 2.0;
        return if mid.is_finite() { mid } else { 0.0 };
    }
    ctx.rng().random_range(lo..=hi)
}

impl DeviceCtx {
    pub fn new(
        scenario_seed: u64,
        id: &str,
        index: u32,
        vars: BTreeMap<String, f64>,
        state: String,
    ) -> Self {
        // FNV-1a of the client id, mixed with the scenario seed: stable across runs and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        DeviceCtx {
            index,
            id: id.to_string(),
            vars,
            state,
            seq: 0,
            sparkplug_seq: 0,
            rng: None,
            rng_seed: scenario_seed ^ h,
        }
    }

    /// The device's seeded random numbers (the same sequence whenever the
    /// first draw happens).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        let seed = self.rng_seed;
        self.rng
            .get_or_insert_with(|| Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// Replace `{id}`, `{i}`, `{seq}`, `{state}`, `{payload}` and `{<var>}` in `template`.
    pub fn fill(&self, template: &str, payload: Option<&str>) -> String {
        if !template.contains('{') {
            return template.to_string();
        }
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            // `{{` is a literal brace.
            if let Some(escaped) = after.strip_prefix('{') {
                out.push('{');
                rest = escaped;
                continue;
            }
            // `{name}`: a placeholder; any other brace is literal text (JSON).
            let Some(key) = crate::scenario::placeholder_at(after) else {
                out.push('{');
                rest = after;
                continue;
            };
            match key {
                "id" => out.push_str(&self.id),
                "i" => out.push_str(&self.index.to_string()),
                "seq" => out.push_str(&self.seq.to_string()),
                // {seq%N}: cycles 1..=N, e.g. to address each device of a fleet in turn.
                k if k.starts_with("seq%") && k[4..].parse::<u64>().is_ok_and(|n| n > 0) => {
                    let n: u64 = k[4..].parse().unwrap_or(1);
                    out.push_str(&(self.seq.saturating_sub(1) % n + 1).to_string());
                }
                "state" => out.push_str(&self.state),
                "payload" if payload.is_some() => out.push_str(payload.unwrap_or_default()),
                k if self.vars.contains_key(k) => out.push_str(&fmt_num(self.vars[k], 2)),
                _ => {
                    out.push('{');
                    out.push_str(key);
                    out.push('}');
                }
            }
            rest = &after[key.len() + 1..];
        }
        out.push_str(rest);
        out
    }

    pub fn holds(&self, cond: &Cond) -> bool {
        let var = |name: &str| self.vars.get(name).copied();
        match cond {
            Cond::Above { var: v, value } => var(v).is_some_and(|x| x > *value),
            Cond::Below { var: v, value } => var(v).is_some_and(|x| x < *value),
            Cond::Outside { var: v, min, max } => var(v).is_some_and(|x| x < *min || x > *max),
            Cond::Inside { var: v, min, max } => var(v).is_some_and(|x| x >= *min && x <= *max),
            Cond::StateIs(s) => &self.state == s,
        }
    }
}

fn fmt_num(x: f64, decimals: u8) -> String {
    let s = format!("{x:.*}", decimals as usize);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn round(x: f64, decimals: u8) -> f64 {
    let p = 10f64.powi(decimals as i32);
    (x * p).round() / p
}

/// A JSON number; whole values are written as integers ("seq": 3, not 3.0).
fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        return Value::from(x as i64);
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// A generator with its running state.
#[derive(Debug, Clone)]
pub struct Sampler {
    generator: Gen,
    /// The samplers of an `Object`'s fields (in key order), an `Array`'s items
    /// or a `OneOf`'s alternatives.
    children: Vec<Sampler>,
    /// An `Object`'s field names, beside `children`.
    keys: Vec<String>,
    current: Option<f64>,
    n: u64,
    /// Seconds between samples (the publish period or the tick), for Sine and Waypoints.
    period_s: f64,
}

impl Sampler {
    pub fn new(generator: Gen, period_s: f64) -> Self {
        let children = match &generator {
            Gen::Object(fields) => fields.values().cloned().collect(),
            Gen::Array(items) | Gen::OneOf(items) => items.clone(),
            _ => Vec::new(),
        }
        .into_iter()
        .map(|g| Sampler::new(g, period_s))
        .collect();
        let keys = match &generator {
            Gen::Object(fields) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        };
        Sampler {
            generator,
            children,
            keys,
            current: None,
            n: 0,
            period_s,
        }
    }

    /// An `Object`, `Array` or `OneOf`: from its children's samplers.
    fn sample_children(&mut self, ctx: &mut DeviceCtx, decimals: u8) -> Value {
        match self.generator {
            Gen::OneOf(_) => {
                if self.children.is_empty() {
                    return Value::Null;
                }
                let k = ctx.rng().random_range(0..self.children.len());
                self.children[k].sample(ctx, decimals)
            }
            Gen::Object(_) => {
                let mut m = Map::new();
                for (k, s) in self.keys.iter().zip(self.children.iter_mut()) {
                    m.insert(k.clone(), s.sample(ctx, decimals));
                }
                Value::Object(m)
            }
            _ => Value::Array(
                self.children
                    .iter_mut()
                    .map(|s| s.sample(ctx, decimals))
                    .collect(),
            ),
        }
    }

    pub fn sample(&mut self, ctx: &mut DeviceCtx, decimals: u8) -> Value {
        let n = self.n;
        self.n += 1;
        let t_s = n as f64 * self.period_s;
        match &self.generator {
            Gen::Const(x) => num(*x),
            Gen::Text(t) => Value::String(ctx.fill(t, None)),
            Gen::Bool(b) => Value::Bool(*b),
            Gen::Uniform { min, max } => {
                let x = draw(ctx, *min, *max);
                num(round(x, decimals))
            }
            Gen::RandomWalk {
                start,
                step,
                min,
                max,
            } => {
                let x = match self.current {
                    None => *start,
                    Some(prev) => {
                        let d = if *step > 0.0 {
                            draw(ctx, -*step, *step)
                        } else {
                            0.0
                        };
                        // Not `clamp`: it panics when min > max (a live edit
                        // can make them so for a moment).
                        (prev + d).max(*min).min(*max)
                    }
                };
                self.current = Some(x);
                num(round(x, decimals))
            }
            Gen::Sine {
                center,
                amplitude,
                period,
            } => {
                let p = period.0.as_secs_f64().max(1e-9);
                num(round(
                    center + amplitude * (std::f64::consts::TAU * t_s / p).sin(),
                    decimals,
                ))
            }
            Gen::Sequence { start, step } => num(round(start + step * n as f64, decimals)),
            Gen::Choice(items) => {
                if items.is_empty() {
                    Value::Null
                } else {
                    let k = ctx.rng().random_range(0..items.len());
                    Value::String(ctx.fill(&items[k], None))
                }
            }
            Gen::Follow {
                target,
                start,
                rate,
                noise,
            } => {
                let goal = ctx.vars.get(target).copied().unwrap_or(*start);
                let prev = self.current.unwrap_or(*start);
                let jitter = if *noise > 0.0 {
                    draw(ctx, -*noise, *noise)
                } else {
                    0.0
                };
                let x = prev + (goal - prev) * rate.clamp(0.0, 1.0) + jitter;
                self.current = Some(x);
                num(round(x, decimals))
            }
            Gen::Var(name) if name == "state" => Value::String(ctx.state.clone()),
            Gen::Var(name) => ctx
                .vars
                .get(name)
                .map_or(Value::Null, |x| num(round(*x, decimals))),
            Gen::Waypoints { points, speed_mps } => {
                waypoint(points, *speed_mps, t_s, ctx.index, decimals)
            }
            Gen::Int { min, max } => Value::from(if max > min {
                ctx.rng().random_range(*min..=*max)
            } else {
                *min
            }),
            Gen::Timestamp => Value::String(
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_micros(crate::time::now_us()),
                )
                .to_string(),
            ),
            Gen::OneOf(_) | Gen::Object(_) | Gen::Array(_) => self.sample_children(ctx, decimals),
            Gen::Null => Value::Null,
        }
    }
}

/// Position along a looping path of (lat, lon, alt) at constant speed.
fn waypoint(
    points: &[(f64, f64, f64)],
    speed_mps: f64,
    t_s: f64,
    index: u32,
    decimals: u8,
) -> Value {
    if points.is_empty() {
        return Value::Null;
    }
    let n = points.len();
    let legs: Vec<f64> = (0..n)
        .map(|k| haversine_m(points[k], points[(k + 1) % n]))
        .collect();
    let total: f64 = legs.iter().sum();
    // Fleets start staggered: device i starts at the beginning of leg (i-1) mod n.
    let offset: f64 = legs
        .iter()
        .take((index.saturating_sub(1) as usize) % n)
        .sum();
    let mut d = if total > 0.0 {
        (offset + speed_mps * t_s) % total
    } else {
        0.0
    };
    let mut leg = 0;
    while leg < n && d > legs[leg] {
        d -= legs[leg];
        leg += 1;
    }
    let leg = leg % n;
    let (a, b) = (points[leg], points[(leg + 1) % n]);
    let f = if legs[leg] > 0.0 {
        (d / legs[leg]).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |x: f64, y: f64| x + (y - x) * f;
    let heading = (b.1 - a.1).atan2(b.0 - a.0).to_degrees().rem_euclid(360.0);
    let mut m = Map::new();
    m.insert("lat".into(), num(round(lerp(a.0, b.0), decimals.max(5))));
    m.insert("lon".into(), num(round(lerp(a.1, b.1), decimals.max(5))));
    m.insert("alt".into(), num(round(lerp(a.2, b.2), 1)));
    m.insert("heading".into(), num(round(heading, 1)));
    m.insert("leg".into(), Value::from(leg as u64));
    Value::Object(m)
}

fn haversine_m(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    let r = 6_371_000.0;
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dla = la2 - la1;
    let dlo = (b.1 - a.1).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

/// A payload with its generators' running state.
#[derive(Debug, Clone)]
pub enum PayloadSampler {
    Text(String),
    Value(Sampler),
    Json(Vec<(String, Sampler)>),
    /// Sparkplug B metrics (name, type, generator); alias = position + 1.
    SparkplugB {
        metrics: Vec<(String, crate::scenario::SpType, Sampler)>,
        birth: bool,
    },
}

impl PayloadSampler {
    pub fn new(p: &Payload, period_s: f64) -> Self {
        match p {
            Payload::Text(t) => PayloadSampler::Text(t.clone()),
            Payload::Value(g) => PayloadSampler::Value(Sampler::new(g.clone(), period_s)),
            Payload::Json(fields) => PayloadSampler::Json(
                fields
                    .iter()
                    .map(|(k, g)| (k.clone(), Sampler::new(g.clone(), period_s)))
                    .collect(),
            ),
            Payload::SparkplugB { metrics, birth } => PayloadSampler::SparkplugB {
                metrics: metrics
                    .iter()
                    .map(|(n, t, g)| (n.clone(), *t, Sampler::new(g.clone(), period_s)))
                    .collect(),
                birth: *birth,
            },
        }
    }

    /// Render the next payload. `received` fills `{payload}` in reactions.
    pub fn render(&mut self, ctx: &mut DeviceCtx, decimals: u8, received: Option<&str>) -> Vec<u8> {
        match self {
            PayloadSampler::Text(t) => ctx.fill(t, received).into_bytes(),
            PayloadSampler::Value(s) => match s.sample(ctx, decimals) {
                Value::String(s) => s.into_bytes(),
                v => v.to_string().into_bytes(),
            },
            PayloadSampler::Json(fields) => {
                let mut m = Map::new();
                for (k, s) in fields.iter_mut() {
                    m.insert(k.clone(), s.sample(ctx, decimals));
                }
                Value::Object(m).to_string().into_bytes()
            }
            PayloadSampler::SparkplugB { metrics, birth } => {
                use crate::scenario::SpType;
                use crate::sparkplug::proto::{Metric, Payload as SpPayload, Value as SpValue};
                if *birth {
                    ctx.sparkplug_seq = 0;
                }
                let seq = ctx.sparkplug_seq % 256;
                ctx.sparkplug_seq = seq + 1;
                let now_ms = crate::time::now_us() / 1000;
                let metrics = metrics
                    .iter_mut()
                    .enumerate()
                    .map(|(k, (name, t, s))| {
                        let v = s.sample(ctx, 6);
                        let x = v.as_f64().or_else(|| v.as_bool().map(|b| b as u8 as f64));
                        let value = match t {
                            SpType::Int32 => SpValue::IntValue(x.unwrap_or(0.0) as i32 as u32),
                            SpType::Int64 => SpValue::LongValue(x.unwrap_or(0.0) as i64 as u64),
                            SpType::Float => SpValue::FloatValue(x.unwrap_or(0.0) as f32),
                            SpType::Double => SpValue::DoubleValue(x.unwrap_or(0.0)),
                            SpType::Boolean => SpValue::BooleanValue(
                                v.as_bool().unwrap_or_else(|| x.unwrap_or(0.0) != 0.0),
                            ),
                            SpType::String => SpValue::StringValue(match v {
                                Value::String(s) => s,
                                other => other.to_string(),
                            }),
                        };
                        Metric {
                            // A BIRTH names every metric; data messages use the alias.
                            name: birth.then(|| name.clone()),
                            alias: Some(k as u64 + 1),
                            timestamp: Some(now_ms),
                            datatype: Some(t.code()),
                            value: Some(value),
                            ..Metric::default()
                        }
                    })
                    .collect();
                prost::Message::encode_to_vec(&SpPayload {
                    timestamp: Some(now_ms),
                    metrics,
                    seq: Some(seq),
                    ..SpPayload::default()
                })
            }
        }
    }
}

/// A number from a received payload: plain text, or a JSON object's `name` or "value" field.
pub fn number_from_payload(payload: &[u8], name: &str) -> Option<f64> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    if let Ok(x) = text.parse::<f64>() {
        return Some(x);
    }
    let v: Value = serde_json::from_str(text).ok()?;
    v.get(name)
        .or_else(|| v.get("value"))
        .and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;

    fn ctx(seed: u64) -> DeviceCtx {
        DeviceCtx::new(
            seed,
            "dev-1",
            1,
            BTreeMap::from([("sp".to_string(), 10.0)]),
            "idle".into(),
        )
    }

    #[test]
    fn same_seed_same_values_other_seed_differs() {
        let payload = Payload::Json(BTreeMap::from([
            (
                "t".to_string(),
                Gen::RandomWalk {
                    start: 20.0,
                    step: 1.0,
                    min: 0.0,
                    max: 40.0,
                },
            ),
            ("u".to_string(), Gen::Uniform { min: 0.0, max: 1.0 }),
        ]));
        let run = |seed| {
            let mut c = ctx(seed);
            let mut p = PayloadSampler::new(&payload, 1.0);
            (0..50)
                .map(|_| p.render(&mut c, 3, None))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn ranges_rand_cannot_draw_from_give_a_value_not_a_panic() {
        let mut c = ctx(1);
        let huge = Gen::Uniform {
            min: -1e308,
            max: 1e308,
        };
        let unbounded_walk = Gen::RandomWalk {
            start: 5.0,
            step: f64::INFINITY,
            min: 10.0,
            max: 0.0, // min above max, as a live edit can leave it
        };
        let wild_noise = Gen::Follow {
            target: "sp".into(),
            start: 0.0,
            rate: 0.5,
            noise: f64::INFINITY,
        };
        assert_eq!(
            Sampler::new(huge, 1.0).sample(&mut c, 0).as_f64(),
            Some(0.0)
        );
        let mut walk = Sampler::new(unbounded_walk, 1.0);
        for _ in 0..3 {
            // A value, whatever it is: the device keeps running.
            let _ = walk.sample(&mut c, 2);
        }
        let mut follow = Sampler::new(wild_noise, 1.0);
        for _ in 0..3 {
            let _ = follow.sample(&mut c, 2);
        }
        // A normal range still draws from the device's seeded sequence.
        let fresh =
            |c: &mut DeviceCtx| Sampler::new(Gen::Uniform { min: 0.0, max: 1.0 }, 1.0).sample(c, 6);
        let mut a = ctx(3);
        let mut b = ctx(3);
        let _ = Sampler::new(Gen::Const(1.0), 1.0).sample(&mut a, 0);
        assert_eq!(fresh(&mut a), fresh(&mut b));
    }

    #[test]
    fn random_walk_stays_in_bounds() {
        let mut c = ctx(1);
        let mut s = Sampler::new(
            Gen::RandomWalk {
                start: 5.0,
                step: 3.0,
                min: 0.0,
                max: 10.0,
            },
            1.0,
        );
        for _ in 0..1000 {
            let x = s.sample(&mut c, 2).as_f64().unwrap();
            assert!((0.0..=10.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn sine_sequence_follow_and_templates() {
        let mut c = ctx(1);
        let mut sine = Sampler::new(
            Gen::Sine {
                center: 10.0,
                amplitude: 5.0,
                period: Dur::secs(4),
            },
            1.0,
        );
        let v: Vec<f64> = (0..4)
            .map(|_| sine.sample(&mut c, 2).as_f64().unwrap())
            .collect();
        assert_eq!(v, [10.0, 15.0, 10.0, 5.0]);
        let mut seq = Sampler::new(
            Gen::Sequence {
                start: 1.0,
                step: 2.0,
            },
            1.0,
        );
        assert_eq!(seq.sample(&mut c, 0), num(1.0));
        assert_eq!(seq.sample(&mut c, 0), num(3.0));
        assert_eq!(num(3.0).to_string(), "3", "whole numbers are JSON integers");
        assert_eq!(num(2.5).to_string(), "2.5");
        let mut f = Sampler::new(
            Gen::Follow {
                target: "sp".into(),
                start: 20.0,
                rate: 0.5,
                noise: 0.0,
            },
            1.0,
        );
        assert_eq!(f.sample(&mut c, 2).as_f64(), Some(15.0));
        assert_eq!(f.sample(&mut c, 2).as_f64(), Some(12.5));
        c.seq = 4;
        assert_eq!(
            c.fill("d/{id}/{i}/{seq}/{state}/{sp}/{nope}", None),
            "d/dev-1/1/4/idle/10/{nope}"
        );
        assert_eq!(c.fill("car-{seq%3}", None), "car-1");
        c.seq = 3;
        assert_eq!(c.fill("car-{seq%3}", None), "car-3");
    }

    #[test]
    fn waypoints_move_and_loop() {
        let mut c = ctx(1);
        let pts = vec![(0.0, 0.0, 10.0), (0.0, 0.001, 10.0)]; // ~111 m apart
        let mut w = Sampler::new(
            Gen::Waypoints {
                points: pts,
                speed_mps: 50.0,
            },
            1.0,
        );
        let lons: Vec<f64> = (0..6)
            .map(|_| w.sample(&mut c, 5)["lon"].as_f64().unwrap())
            .collect();
        assert_eq!(lons[0], 0.0);
        assert!(lons[1] > 0.0 && lons[2] > lons[1], "{lons:?}");
        assert!(
            lons[3] < lons[2],
            "turned back on the closing leg: {lons:?}"
        );
    }

    #[test]
    fn numbers_from_payloads() {
        assert_eq!(number_from_payload(b" 12.5 ", "sp"), Some(12.5));
        assert_eq!(number_from_payload(br#"{"sp": 9}"#, "sp"), Some(9.0));
        assert_eq!(number_from_payload(br#"{"value": 3}"#, "sp"), Some(3.0));
        assert_eq!(number_from_payload(b"warm", "sp"), None);
    }
}

//! `bench --contract SPEC`: what checking a PUBLISH against an AsyncAPI
//! document costs. Payloads are generated from the document's own schemas
//! (the scenario `import` writes), then checked as the engine checks every
//! client PUBLISH (`Contract::check`: the channel by topic, the compiled
//! schema, the bindings); a payload with a wrong field type measures the
//! path that collects violations.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::contract::Contract;
use crate::scenario::{Action, ImportOptions, Scenario, import_contract};
use crate::sim::generators::{DeviceCtx, PayloadSampler};

/// Payloads generated per channel.
const SAMPLES: usize = 200;

/// One channel's figures.
struct Row {
    channel: String,
    ok_ns: f64,
    bad_ns: Option<f64>,
}

fn time_per_check(
    contract: &Contract,
    frames: &[(String, Vec<u8>, u8, bool)],
    checks: usize,
) -> (f64, usize) {
    let started = Instant::now();
    let mut violations = 0;
    for k in 0..checks {
        let (t, p, q, r) = &frames[k % frames.len()];
        violations += contract.check(t, p, *q, *r).violations.len();
    }
    (
        started.elapsed().as_nanos() as f64 / checks as f64,
        violations,
    )
}

/// Check `checks` payloads per channel; the report as text.
pub fn contract(spec: &Path, checks: usize) -> anyhow::Result<String> {
    let loaded = Instant::now();
    let contract = Contract::load(spec)?;
    let load_ms = loaded.elapsed().as_secs_f64() * 1e3;
    let imported = import_contract(
        &contract,
        "spec",
        ImportOptions {
            count: 1,
            every_s: 1,
        },
    );
    let scenario = Scenario::parse(&imported.ron, Path::new("bench.ron"))?;
    let mut ctx = DeviceCtx::new(1, "bench-1", 1, Default::default(), String::new());
    let mut candidates = Vec::new();
    for d in &scenario.devices {
        for p in &d.publish {
            candidates.push((
                p.topic.clone(),
                p.payload.clone(),
                p.qos.0,
                p.retain,
                p.decimals,
            ));
        }
        for a in d.react.iter().flat_map(|r| &r.actions) {
            if let Action::Publish {
                topic,
                payload,
                qos,
                retain,
            } = a
            {
                candidates.push((topic.clone(), payload.clone(), qos.0, *retain, 2));
            }
        }
    }
    let mut rows = Vec::new();
    for c in &contract.channels {
        // The publish (or reply) the import wrote for this channel, its topic made concrete.
        let Some((topic, payload, qos, retain, decimals)) = candidates
            .iter()
            .map(|(t, p, q, r, d)| (ctx.fill(t, None), p, *q, *r, *d))
            .find(|(t, ..)| {
                contract
                    .channel_for(t)
                    .is_some_and(|x| x.address == c.address)
            })
        else {
            continue;
        };
        let mut sampler = PayloadSampler::new(payload, 1.0);
        let good: Vec<_> = (0..SAMPLES)
            .map(|_| {
                (
                    topic.clone(),
                    sampler.render(&mut ctx, decimals, None),
                    qos,
                    retain,
                )
            })
            .collect();
        let (ok_ns, violations) = time_per_check(&contract, &good, checks);
        if violations > 0 {
            anyhow::bail!(
                "{}: generated payloads broke the contract ({violations} violations)",
                c.address
            );
        }
        // The same payloads with every number as text: the error path.
        let bad: Vec<_> = good
            .iter()
            .map(|(t, p, q, r)| {
                let text = String::from_utf8_lossy(p);
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let broken = match v {
                    serde_json::Value::Object(m) => serde_json::Value::Object(
                        m.into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v.to_string())))
                            .collect(),
                    ),
                    other => other,
                };
                (t.clone(), broken.to_string().into_bytes(), *q, *r)
            })
            .collect();
        let (bad_ns, violations) = time_per_check(&contract, &bad, checks);
        rows.push(Row {
            channel: c.address.to_string(),
            ok_ns,
            bad_ns: (violations > 0).then_some(bad_ns),
        });
    }
    let mut out = format!(
        "contract {} (AsyncAPI {}, {} channels; read and compiled in {load_ms:.1} ms): {checks} checks per channel\n",
        spec.display(),
        contract.version,
        contract.channels.len()
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "  {:<40} {:>7.2} µs per conforming message, {}",
            r.channel,
            r.ok_ns / 1e3,
            r.bad_ns
                .map_or("no field to break".to_string(), |ns| format!(
                    "{:.2} µs with violations",
                    ns / 1e3
                ))
        );
    }
    Ok(out)
}

// A Sparkplug B 3.0 primary host built on Eclipse Tahu's own payload
// library (npm `sparkplug-payload`) and MQTT.js, for tests/sparkplug.rs.
//
//   node tahu_host.mjs URL HOST_ID GROUP
//
// It does what a SCADA host does when it connects after the edge nodes:
// retained STATE death as its will, retained STATE birth (QoS 1, the 3.0
// JSON payload with a timestamp), subscribes to spBv1.0/GROUP/#, and asks a
// node for a rebirth (NCMD `Node Control/Rebirth` = true) when DATA comes
// from a node it has no birth for. It resolves DATA metrics by the aliases
// of the BIRTHs it has seen. Each observation is one JSON line on stdout:
//   {"step":"connected"} {"step":"rebirth","node":…}
//   {"step":"nbirth","node":…,"bdSeq":…,"seq":…,"metrics":{name:value}}
//   {"step":"dbirth","node":…,"device":…,"seq":…,"metrics":{…},"units":{…}}
//   {"step":"ndata"|"ddata",…,"metrics":{…},"unresolved":N,"seq":…}
//   {"step":"ndeath","node":…,"bdSeq":…,"birth_bdSeq":…}
//   {"step":"ddeath",…} {"step":"ncmd"|"dcmd",…,"metrics":{…}}
//   {"step":"error","message":…}
// Lines on stdin are commands: {"write":{"node":…,"device":…(optional),
// "metric":…,"type":…,"value":…}} sends an NCMD/DCMD writing a metric;
// {"publish":{"topic":…,"payload":{…Tahu payload object…}}} encodes and
// publishes any payload with Tahu (QoS 0).

import { createRequire } from 'node:module';
import readline from 'node:readline';
import mqtt from 'mqtt';

const require = createRequire(import.meta.url);
const sparkplug = require('sparkplug-payload').get('spBv1.0');

const [url, hostId, group] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const stateTopic = `spBv1.0/STATE/${hostId}`;

// Tahu decodes 64-bit integers as `Long`; plain numbers for JSON.
function plain(v) {
  if (v && typeof v === 'object' && typeof v.toNumber === 'function') return v.toNumber();
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** node key -> { born, bdSeq, aliases: Map(alias -> name), lastSeq, askedAt } */
const nodes = new Map();
const nodeOf = (key) => {
  if (!nodes.has(key)) nodes.set(key, { born: false, bdSeq: null, aliases: new Map(), lastSeq: null, askedAt: 0 });
  return nodes.get(key);
};

const ts = Date.now();
const client = mqtt.connect(url, {
  clientId: hostId,
  protocolVersion: 4,
  clean: true,
  reconnectPeriod: 0,
  will: { topic: stateTopic, payload: JSON.stringify({ online: false, timestamp: ts }), qos: 1, retain: true },
});

client.on('error', (e) => say({ step: 'error', message: String(e) }));
client.on('connect', () => {
  client.subscribe([stateTopic, `spBv1.0/${group}/#`], { qos: 1 }, (err) => {
    if (err) return say({ step: 'error', message: String(err) });
    client.publish(stateTopic, JSON.stringify({ online: true, timestamp: ts }), { qos: 1, retain: true }, () =>
      say({ step: 'connected' }),
    );
  });
});

function rebirth(node) {
  const n = nodeOf(node);
  if (Date.now() - n.askedAt < 2000) return;
  n.askedAt = Date.now();
  const payload = sparkplug.encodePayload({
    timestamp: Date.now(),
    metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }],
  });
  const [g, id] = node.split('/');
  client.publish(`spBv1.0/${g}/NCMD/${id}`, Buffer.from(payload), { qos: 0 });
  say({ step: 'rebirth', node });
}

function named(n, metrics) {
  const out = {};
  let unresolved = 0;
  for (const m of metrics) {
    const alias = m.alias === undefined ? undefined : plain(m.alias);
    const name = m.name ?? n.aliases.get(alias);
    if (name === undefined) unresolved += 1;
    else out[name] = plain(m.value);
  }
  return { metrics: out, unresolved };
}

client.on('message', (topic, buf) => {
  const parts = topic.split('/');
  if (parts[1] === 'STATE' || parts.length < 4) return;
  const [, g, kind, id, device] = parts;
  const key = `${g}/${id}`;
  const n = nodeOf(key);
  let p;
  try {
    p = sparkplug.decodePayload(new Uint8Array(buf));
  } catch (e) {
    return say({ step: 'error', message: `Tahu cannot decode ${topic}: ${e}` });
  }
  const seq = p.seq === undefined || p.seq === null ? null : plain(p.seq);
  const metrics = p.metrics ?? [];
  switch (kind) {
    case 'NBIRTH': {
      n.born = true;
      n.aliases = new Map();
      const bd = metrics.find((m) => m.name === 'bdSeq');
      n.bdSeq = bd ? plain(bd.value) : null;
      for (const m of metrics) if (m.alias !== undefined) n.aliases.set(plain(m.alias), m.name);
      n.lastSeq = seq;
      say({ step: 'nbirth', node: key, bdSeq: n.bdSeq, seq, timestamp: plain(p.timestamp), metrics: named(n, metrics).metrics });
      break;
    }
    case 'DBIRTH': {
      for (const m of metrics) if (m.alias !== undefined) n.aliases.set(plain(m.alias), m.name);
      const units = {};
      for (const m of metrics) if (m.properties?.engUnit) units[m.name] = m.properties.engUnit.value;
      n.lastSeq = seq;
      say({ step: 'dbirth', node: key, device, seq, metrics: named(n, metrics).metrics, units });
      break;
    }
    case 'NDATA':
    case 'DDATA': {
      if (!n.born) {
        rebirth(key);
        return;
      }
      const gap = n.lastSeq !== null && seq !== (n.lastSeq + 1) % 256;
      n.lastSeq = seq;
      say({ step: kind.toLowerCase(), node: key, device, seq, gap, ...named(n, metrics) });
      break;
    }
    case 'NDEATH': {
      const bd = metrics.find((m) => m.name === 'bdSeq');
      say({ step: 'ndeath', node: key, bdSeq: bd ? plain(bd.value) : null, birth_bdSeq: n.bdSeq });
      if (bd && plain(bd.value) === n.bdSeq) n.born = false;
      break;
    }
    case 'DDEATH':
      say({ step: 'ddeath', node: key, device, seq });
      break;
    case 'NCMD':
    case 'DCMD':
      say({ step: kind.toLowerCase(), node: key, device, metrics: named(n, metrics).metrics });
      break;
    default:
      break;
  }
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return say({ step: 'error', message: `not a command: ${line}` });
  }
  if (cmd.write) {
    const w = cmd.write;
    const [g, id] = w.node.split('/');
    const payload = sparkplug.encodePayload({
      timestamp: Date.now(),
      metrics: [{ name: w.metric, type: w.type, value: w.value }],
    });
    const topic = w.device ? `spBv1.0/${g}/DCMD/${id}/${w.device}` : `spBv1.0/${g}/NCMD/${id}`;
    client.publish(topic, Buffer.from(payload), { qos: 0 }, () => say({ step: 'written', topic }));
  } else if (cmd.publish) {
    const payload = sparkplug.encodePayload(cmd.publish.payload);
    client.publish(cmd.publish.topic, Buffer.from(payload), { qos: 0 }, () =>
      say({ step: 'published', topic: cmd.publish.topic }),
    );
  }
});

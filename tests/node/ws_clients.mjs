// MQTT.js over WebSockets against the workbench's ws:// listener
// (tests/interop_ws.rs runs it): QoS 0/1/2 both ways, a retained message,
// and a will that fires when the test drops the will client at the tap.
//
//   node ws_clients.mjs URL PROTOCOL_VERSION(4|5) [CAFILE]
//
// With CAFILE (a wss:// URL), the server's certificate must be signed by it.
// Prints one JSON line per step on stdout ("step": …); the last one has
// "step": "done" and what was received. Exits 1 on any error or timeout.
import { readFileSync } from "node:fs";
import mqtt from "mqtt";

const [url, version, cafile] = process.argv.slice(2);
const tls = cafile ? { ca: readFileSync(cafile), rejectUnauthorized: true } : {};
const v = Number(version);
const base = `ws/${v}`;
const say = (o) => console.log(JSON.stringify(o));
const fail = (why) => {
  say({ step: "error", why: String(why) });
  process.exit(1);
};
setTimeout(() => fail("timed out after 45 s"), 45_000).unref();

const connect = (clientId, extra = {}) =>
  new Promise((resolve, reject) => {
    const c = mqtt.connect(url, {
      clientId,
      protocolVersion: v,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...tls,
      ...extra,
    });
    c.once("connect", () => resolve(c));
    c.once("error", reject);
    c.once("close", () => reject(new Error(`${clientId}: connection closed before CONNACK`)));
  });

try {
  const received = [];
  const sub = await connect(`sub-${v}`);
  await sub.subscribeAsync(`${base}/#`, { qos: 2 });
  let onMessage = () => {};
  sub.on("message", (topic, payload, packet) => {
    received.push({ topic, qos: packet.qos, retain: packet.retain, payload: payload.toString() });
    onMessage();
  });
  const until = (n) =>
    new Promise((resolve) => {
      onMessage = () => received.length >= n && resolve();
      onMessage();
    });

  await connect(`will-${v}`, {
    will: { topic: `${base}/will`, payload: Buffer.from("gone"), qos: 1, retain: false },
  });
  const pub = await connect(`pub-${v}`);
  for (const qos of [0, 1, 2]) {
    await pub.publishAsync(`${base}/q${qos}`, `hello at ${qos}`, { qos });
  }
  await pub.publishAsync(`${base}/retained`, "kept", { qos: 1, retain: true });
  await until(4);
  say({ step: "published", received: received.length });

  // The test drops will-V at the tap now; the broker publishes its will.
  say({ step: "waiting-for-will" });
  await until(5);

  const late = await connect(`late-${v}`);
  const retained = await new Promise((resolve) => {
    late.on("message", (topic, payload, packet) =>
      resolve({ topic, retain: packet.retain, payload: payload.toString() }),
    );
    late.subscribe(`${base}/retained`, { qos: 1 });
  });
  // Clear the retained message so a rerun starts clean.
  await pub.publishAsync(`${base}/retained`, "", { qos: 1, retain: true });
  for (const c of [sub, pub, late]) await c.endAsync();
  say({ step: "done", received, retained });
  process.exit(0);
} catch (e) {
  fail(e && e.message ? e.message : e);
}

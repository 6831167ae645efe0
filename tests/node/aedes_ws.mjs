// A third-party broker with a WebSocket listener, for `--broker ws://…`
// (tests/interop_ws.rs): Aedes (npm `aedes`) behind a `ws` server on a free
// loopback port, at PATH.
//
//   node aedes_ws.mjs PATH
//
// Prints one JSON line per event on stdout: {"step": "listening", "port": N}
// first, then {"step": "client", "id": …, "protocol": …} for each client that
// connects and {"step": "publish", "id": …, "topic": …, "payload": …} for
// each message a client publishes. Runs until killed (at most 60 s).
import { createServer } from "node:http";
import { Aedes } from "aedes";
import { WebSocketServer, createWebSocketStream } from "ws";

const [path] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
setTimeout(() => process.exit(0), 60_000).unref();

const broker = await Aedes.createBroker();
broker.on("client", (c) => say({ step: "client", id: c.id, protocol: c.version }));
broker.on("publish", (packet, client) => {
  if (client) {
    say({ step: "publish", id: client.id, topic: packet.topic, payload: packet.payload.toString() });
  }
});
const http = createServer();
const wss = new WebSocketServer({ server: http, path });
wss.on("connection", (socket) => broker.handle(createWebSocketStream(socket)));
http.listen(0, "127.0.0.1", () => say({ step: "listening", port: http.address().port }));

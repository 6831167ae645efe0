// A web page in a real browser (Debian's chromium, headless, driven by
// playwright-core) connects with MQTT.js's browser bundle over ws://,
// waits for a virtual device's message and sends it a command
// (tests/interop_ws.rs runs it and checks both in the capture).
//
//   node browser.mjs WS_URL
//
// Prints one JSON line: what the page saw ({"state": …, "ack": …}), or
// {"step": "error", "why": …} and exit 1.
import http from "node:http";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [wsUrl] = process.argv.slice(2);
// The published browser bundle (the package's exports do not name it).
const bundle = readFileSync(new URL("./node_modules/mqtt/dist/mqtt.min.js", import.meta.url));

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>lamp dashboard</title>
<script src="/mqtt.min.js"></script></head>
<body><p id="state">waiting</p><script>
  const seen = {};
  const client = mqtt.connect(new URLSearchParams(location.search).get("ws"),
    { clientId: "browser-page", reconnectPeriod: 0 });
  client.on("error", (e) => { window.result = { error: String(e) }; });
  client.on("connect", () => client.subscribe("home/lamp-1/#", { qos: 1 }));
  client.on("message", (topic, payload) => {
    const text = payload.toString();
    if (topic === "home/lamp-1/state" && seen.state === undefined) {
      seen.state = text;
      document.getElementById("state").textContent = "lamp: " + text;
      client.publish("home/lamp-1/set", "42", { qos: 1 });
    }
    if (topic === "home/lamp-1/ack") {
      seen.ack = text;
      client.end(false, {}, () => { window.result = seen; });
    }
  });
</script></body></html>`;

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/mqtt.min.js")) {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(bundle);
  } else {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(page);
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));

let browser;
const consoleLines = [];
let tab;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
    timeout: 30_000,
  });
  tab = await browser.newPage();
  tab.on("console", (m) => consoleLines.length < 50 && consoleLines.push(m.text()));
  tab.on("pageerror", (e) => consoleLines.length < 50 && consoleLines.push(String(e)));
  const { port } = server.address();
  await tab.goto(`http://127.0.0.1:${port}/?ws=${encodeURIComponent(wsUrl)}`);
  const handle = await tab.waitForFunction(() => window.result, null, { timeout: 30_000 });
  console.log(JSON.stringify(await handle.jsonValue()));
  await browser.close();
  server.close();
  process.exit(0);
} catch (e) {
  const shown = tab ? await tab.textContent("#state").catch(() => "?") : "no page";
  console.log(
    JSON.stringify({
      step: "error",
      why: String(e && e.message ? e.message : e),
      page: shown,
      console: consoleLines,
    }),
  );
  if (browser) await browser.close();
  process.exit(1);
}

//! Shared rig for integration tests: a real embedded broker and tap on free
//! loopback ports, a capture fed by the engine, and real rumqttc clients.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_workbench::capture::Capture;
use mqtt_workbench::cli;
use mqtt_workbench::engine::{self, EngineConfig, EngineHandle, Readiness};
use mqtt_workbench::model::Model;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, mpsc};

pub struct Rig {
    pub handle: EngineHandle,
    /// What the engine reported, applied by the same `Model::apply` the window uses.
    pub model: Model,
    port: u16,
    /// Signalled whenever the engine queues events.
    arrived: Arc<Notify>,
}

impl Rig {
    pub async fn start() -> Rig {
        Rig::start_with(EngineConfig::default()).await
    }

    /// A rig with this configuration, on a free loopback port.
    pub async fn start_with(cfg: EngineConfig) -> Rig {
        let handle = engine::start(EngineConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..cfg
        })
        .await
        .expect("engine starts on a free loopback port");
        let port = match handle.readiness() {
            Readiness::Ready { tap, .. } => tap.port(),
            other => panic!("engine not ready: {other:?}"),
        };
        let arrived = Arc::new(Notify::new());
        let signal = arrived.clone();
        handle.set_waker(Arc::new(move || signal.notify_one()));
        Rig {
            handle,
            model: Model::default(),
            port,
            arrived,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn drain(&mut self) {
        self.model.drain(&self.handle, None);
    }

    pub fn inject(&self, fault: mqtt_workbench::fault::Fault) {
        assert!(
            self.handle
                .send(mqtt_workbench::command::Command::Inject(fault))
        );
    }

    /// Until the engine queues events, at most 50 ms (verdicts with deadlines
    /// change with time alone).
    async fn next_events(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(50), self.arrived.notified()).await;
    }

    /// Drain events until `pred` holds on the capture; panic with the capture summary after `secs`.
    pub async fn wait_for(&mut self, what: &str, secs: u64, pred: impl Fn(&Capture) -> bool) {
        self.wait_model(what, secs, |m| pred(&m.capture)).await
    }

    /// Drain events until `pred` holds on the model (faults in force, device
    /// states, markers…); panic with the capture summary after `secs`.
    pub async fn wait_model(&mut self, what: &str, secs: u64, pred: impl Fn(&Model) -> bool) {
        let t0 = Instant::now();
        loop {
            self.drain();
            if pred(&self.model) {
                return;
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                panic!(
                    "timed out after {secs}s waiting for: {what}\nnotices: {:?}\nscenario: {:?}\ndevices: {:?}\n{}",
                    self.model.take_notices(),
                    self.model.scenario.as_ref().map(|s| &s.info.name),
                    self.model.devices.fleets(),
                    cli::summary(&self.model.capture, t0.elapsed())
                );
            }
            self.next_events().await;
        }
    }

    /// Drain until a notice matching `pred` arrives (others are skipped); panic after `secs`.
    pub async fn wait_notice(
        &mut self,
        what: &str,
        secs: u64,
        pred: impl Fn(&mqtt_workbench::model::Notice) -> bool,
    ) -> mqtt_workbench::model::Notice {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        loop {
            self.drain();
            for n in self.model.take_notices() {
                if pred(&n) {
                    return n;
                }
                seen.push(n);
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "timed out after {secs}s waiting for the notice: {what}; saw {seen:?}"
            );
            self.next_events().await;
        }
    }
}

/// A real rumqttc client whose event loop runs in a task until its first
/// error (it does not reconnect), forwarding incoming packets.
pub struct TestClient {
    pub client: AsyncClient,
    pub incoming: mpsc::Receiver<Packet>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn options(id: &str, port: u16, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(clean);
    o
}

pub fn connect(opts: MqttOptions) -> TestClient {
    let (client, el) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(poll_until_error(el, tx));
    TestClient {
        client,
        incoming: rx,
        task,
    }
}

async fn poll_until_error(mut el: EventLoop, tx: mpsc::Sender<Packet>) {
    loop {
        match el.poll().await {
            Ok(Event::Incoming(p)) => {
                let _ = tx.try_send(p);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

impl TestClient {
    /// Wait for the next incoming packet matching `pred`.
    pub async fn expect(
        &mut self,
        what: &str,
        secs: u64,
        pred: impl Fn(&Packet) -> bool,
    ) -> Packet {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(p)) if pred(&p) => return p,
                Ok(Some(_)) => {}
                Ok(None) => panic!("client closed while waiting for {what}"),
                Err(_) => panic!("timed out after {secs}s waiting for {what}"),
            }
        }
    }

    pub async fn connack(&mut self) -> rumqttc::ConnAck {
        match self
            .expect("CONNACK", 5, |p| matches!(p, Packet::ConnAck(_)))
            .await
        {
            Packet::ConnAck(a) => a,
            _ => unreachable!(),
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("the client queues the SUBSCRIBE");
        self.expect("SUBACK", 5, |p| matches!(p, Packet::SubAck(_)))
            .await;
    }

    /// Disconnect gracefully: DISCONNECT then close; waits for the loop to end.
    pub async fn disconnect(self) {
        self.client
            .disconnect()
            .await
            .expect("the client queues the DISCONNECT");
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

pub fn publish_payloads(p: &Packet) -> Option<(&str, &[u8])> {
    match p {
        Packet::Publish(p) => Some((&p.topic, &p.payload)),
        _ => None,
    }
}

/// A subscriber on `filter` and a publisher, both connected through the tap.
pub async fn sub_and_pub(
    port: u16,
    sub_id: &str,
    sub_clean: bool,
    filter: &str,
    qos: QoS,
    pub_id: &str,
) -> (TestClient, TestClient) {
    let mut sub = connect(options(sub_id, port, sub_clean));
    sub.connack().await;
    sub.subscribe(filter, qos).await;
    let mut publ = connect(options(pub_id, port, true));
    publ.connack().await;
    (sub, publ)
}

/// Run `tests/SCRIPT` with python3 and `args`, ended after `secs`: whether it
/// exited 0, and its stdout then stderr. A missing paho-mqtt says what to run.
pub async fn python(script: &str, args: &[String], secs: u64) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(secs),
        tokio::process::Command::new("python3")
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests")
                    .join(script),
            )
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} ends within {secs} s"))
    .expect("python3 runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named 'paho'"),
        "paho-mqtt is missing: run scripts/setup.sh\n{text}"
    );
    (out.status.success(), text)
}

/// A mosquitto tool (`mosquitto_sub`, `mosquitto_pub`; scripts/setup.sh
/// installs mosquitto-clients) for 127.0.0.1:`port` at protocol `version`
/// ("5", "mqttv311"), its output piped, killed when dropped.
pub fn mosquitto(tool: &str, version: &str, port: u16, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(tool);
    c.args(["-V", version, "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Run the binary with `args`; kill it (and fail) if it has not ended within `limit`.
pub fn output_within(args: &[&str], limit: Duration) -> std::process::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{args:?} still running after {limit:?}"))
            .expect("its output")
    })
}

/// The folder of the Node.js interop clients (npm packages installed by scripts/setup.sh).
pub fn node_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// `node SCRIPT ARGS…` in tests/node (stdin piped, killed on drop), its
/// stdout lines as JSON values (other lines as `{"step": "output"}`), sent as they come.
pub fn node(
    script: &str,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::Receiver<serde_json::Value>,
) {
    use tokio::io::AsyncBufReadExt;
    assert!(
        node_dir().join("node_modules/mqtt").is_dir(),
        "the Node.js clients are missing: run scripts/setup.sh"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(node_dir().join(script))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let v = serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({"step": "output", "line": line}));
            if tx.send(v).await.is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// The next line from a Node.js client whose "step" is `step` and for which
/// `pred` holds; an "error" line, the end of its output or `secs` passing fails the test.
pub async fn next_step(
    rx: &mut tokio::sync::mpsc::Receiver<serde_json::Value>,
    step: &str,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) if v["step"] == step && pred(&v) => return v,
            Ok(Some(v)) if v["step"] == "error" => panic!("the node client failed: {v}"),
            Ok(Some(v)) => {
                if seen.len() < 20 {
                    seen.push(v);
                }
            }
            Ok(None) => panic!("the node client ended before {step:?}; saw {seen:?}"),
            Err(_) => panic!("no {step:?} from the node client within {secs} s; saw {seen:?}"),
        }
    }
}

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mqtt_workbench::broker::{Upstream, parse_broker_url};
use mqtt_workbench::engine::EngineConfig;

static LONG_VERSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(mqtt_workbench::about::long_version);

/// MQTT Workbench: an embedded broker, a wire tap and virtual devices for
/// designing and testing IoT systems before the hardware arrives.
///
/// With no subcommand it opens the desktop window.
#[derive(Parser)]
#[command(name = "mqtt-workbench", version, long_version = LONG_VERSION.as_str(), about, long_about)]
struct Cli {
    /// Scenario to open in the window.
    scenario: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Args, Clone)]
struct NetArgs {
    /// Port clients connect to (the tap in front of the broker); 0 picks a free port.
    #[arg(long, global = true, default_value_t = 1883)]
    port: u16,
    /// Address to listen on (loopback by default).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    bind: String,
    /// Use an external broker behind the tap instead of the embedded one:
    /// mqtt://[user:password@]host:port, mqtts://… over TLS, or over
    /// WebSockets ws://host:port/path, wss://….
    #[arg(long, global = true)]
    broker: Option<String>,
    /// With --broker mqtts://…: a CA (PEM) to trust besides the system's.
    #[arg(long, global = true, requires = "broker")]
    broker_ca: Option<PathBuf>,
    /// Internal port of the embedded broker (0 picks a free port).
    #[arg(long, global = true, default_value_t = 0)]
    broker_port: u16,
    /// The embedded broker refuses a CONNECT past this many clients, with
    /// CONNACK server unavailable (3.1.1) or quota exceeded (5): rehearse a
    /// full broker.
    #[arg(long, global = true, default_value_t = mqtt_workbench::broker::DEFAULT_MAX_CONNECTIONS, conflicts_with = "broker")]
    max_connections: usize,
    /// Also listen with TLS (on --tls-port). Without --tls-cert/--tls-key the
    /// workbench makes a local CA and a certificate for localhost, 127.0.0.1
    /// and ::1, kept for the next start; trust its ca.pem in your clients.
    #[arg(long, global = true)]
    tls: bool,
    /// Port of the TLS listener (0 picks a free port).
    #[arg(long, global = true, default_value_t = 8883)]
    tls_port: u16,
    /// Server certificate chain (PEM) for the TLS listener (implies --tls).
    #[arg(long, global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TLS clients must present a certificate (signed by the generated CA or --tls-client-ca).
    #[arg(long, global = true)]
    tls_require_client_cert: bool,
    /// A CA (PEM) whose client certificates the TLS listener accepts.
    #[arg(long, global = true)]
    tls_client_ca: Option<PathBuf>,
    /// Folder for the generated certificates (default: the data folder's mqtt-workbench/tls).
    #[arg(long, global = true)]
    tls_dir: Option<PathBuf>,
    /// Append the TLS session keys of the tap's TLS clients to FILE
    /// (SSLKEYLOGFILE format: Wireshark decrypts a capture with it).
    #[arg(long, global = true, value_name = "FILE")]
    tls_keylog: Option<PathBuf>,
    /// Also listen for MQTT over WebSockets (ws://, on --ws-port).
    #[arg(long, global = true)]
    ws: bool,
    /// Port of the WebSocket listener (0 picks a free port).
    #[arg(long, global = true, default_value_t = mqtt_workbench::tap::ws::DEFAULT_WS_PORT)]
    ws_port: u16,
    /// Also listen for MQTT over secure WebSockets (wss://, on --wss-port),
    /// with the TLS listener's certificates (implies --tls).
    #[arg(long, global = true)]
    wss: bool,
    /// Port of the secure WebSocket listener (0 picks a free port).
    #[arg(long, global = true, default_value_t = mqtt_workbench::tap::ws::DEFAULT_WSS_PORT)]
    wss_port: u16,
    /// The path the WebSocket listeners serve ("*": any path).
    #[arg(long, global = true, default_value = mqtt_workbench::tap::ws::DEFAULT_PATH)]
    ws_path: String,
    /// Users file (RON): usernames, passwords and per-user publish/subscribe
    /// filters the tap enforces. A scenario's `auth` section replaces it while it runs.
    #[arg(long, global = true)]
    users: Option<PathBuf>,
    /// Write every captured frame, fault and verdict to this SQLite file
    /// (created if missing; the schema is in the README). Query it with
    /// `mqtt-workbench query FILE "SELECT …"` or any SQLite reader.
    #[arg(long, global = true)]
    capture_db: Option<PathBuf>,
    /// With --capture-db: remove the oldest frames once they take more than this many MiB.
    #[arg(long, global = true, requires = "capture_db")]
    capture_db_max_mib: Option<u64>,
    /// With --capture-db: remove frames older than this (e.g. 24h).
    #[arg(long, global = true, requires = "capture_db", value_parser = humantime::parse_duration)]
    capture_db_max_age: Option<Duration>,
}

/// `mqtt-workbench bench`'s options.
#[derive(clap::Args)]
struct BenchArgs {
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Messages per second per device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Run the publishing devices in a child process (for fleets larger than
    /// this process's open-file limit allows).
    #[arg(long)]
    devices_process: bool,
    /// With --devices-process: publishers connect straight to the broker,
    /// bypassing the tap (measures the tap's cost).
    #[arg(long, requires = "devices_process")]
    direct: bool,
    /// Measure the window instead: CPU per frame with `--preload` messages
    /// captured and the fleet arriving, each inspector tab in turn for an
    /// equal share of `--duration` (needs a display; Xvfb works).
    #[arg(long, conflicts_with = "devices_process")]
    gui: bool,
    /// With --gui: messages in the capture before measuring.
    #[arg(long, default_value_t = 100_000, requires = "gui")]
    preload: u64,
    /// Every bench device (publishers and subscriber) speaks MQTT 5.
    #[arg(long)]
    mqtt5: bool,
    /// The publishers are scripted devices: a small JavaScript `onTick` that
    /// publishes JSON (measures the scripts' CPU and memory per device).
    #[arg(long, conflicts_with_all = ["gui", "devices_process"])]
    script: bool,
    /// Measure the expectation evaluator alone: this many expectations
    /// over 2,000,000 synthetic frames.
    #[arg(long, conflicts_with_all = ["gui", "devices_process"])]
    checks: Option<usize>,
    /// Measure what subscriptions cost instead: one client subscribes this
    /// many distinct filters, then 1,000 clients subscribe one shared filter
    /// (RSS growth of the broker, tap and capture).
    #[arg(long, conflicts_with_all = ["gui", "devices_process", "checks"])]
    subscriptions: Option<usize>,
    /// Measure what checking a PUBLISH against this AsyncAPI document costs:
    /// payloads generated from its schemas, checked as the engine checks
    /// every client PUBLISH (conforming, and with violations).
    #[arg(long, conflicts_with_all = ["gui", "devices_process", "checks", "subscriptions"])]
    contract: Option<PathBuf>,
    /// Give up (with what did not connect, and why) when the fleet is not
    /// connected by then; default 30 s and 4 ms a device.
    #[arg(long, value_parser = humantime::parse_duration)]
    connect_timeout: Option<Duration>,
    /// How the publishers connect: tcp, ws (MQTT over WebSockets) or wss
    /// (and TLS). A list (tcp,ws,wss) runs the fleet over each in turn and
    /// sets the figures side by side.
    #[arg(long, value_delimiter = ',', default_value = "tcp", conflicts_with_all = ["gui", "devices_process"])]
    transport: Vec<mqtt_workbench::scenario::Transport>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario headless, print a live status line and a closing summary.
    Run {
        /// Without one: just the broker, the tap and the summary, for your own clients.
        scenario: Option<PathBuf>,
        /// How long to run (e.g. 30s, 2m); until Ctrl-C when absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Write the message log here when done (.csv or .jsonl).
        #[arg(long)]
        export: Option<PathBuf>,
        /// Save the whole capture (every frame, both legs, faults, timing) for
        /// File → Open capture, `replay` and `test --capture`.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Apply changes to the scenario file while it runs: unchanged devices
        /// keep their connections; a file with an error keeps the running scenario.
        #[arg(long)]
        watch: bool,
        /// Run only the K-th of N parts of every fleet (K from 1), e.g. one
        /// machine's share against a cluster given by --broker; same client
        /// ids and payloads as the whole run. Combine shards with `merge`.
        #[arg(long, value_name = "K/N")]
        shard: Option<mqtt_workbench::sim::Shard>,
        /// Append resource and message figures (RSS, open files, tasks, QoS
        /// accounting) as one JSON line every --stats-every.
        #[arg(long)]
        stats: Option<PathBuf>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s", requires = "stats")]
        stats_every: Duration,
        /// Keep at most this many captured frames (the oldest are evicted and
        /// counted); default 500,000. Long runs reach their steady state sooner.
        #[arg(long)]
        capture_events: Option<usize>,
        /// Say (as an error) which devices never connected, and why, when the
        /// fleet is not connected by then; default 30 s and 4 ms a device.
        #[arg(long, value_parser = humantime::parse_duration)]
        connect_timeout: Option<Duration>,
        /// Check every PUBLISH against this AsyncAPI document (2.6 or 3.0,
        /// YAML or JSON): payload schemas, QoS and retain bindings, undeclared
        /// topics; the scenario's traffic or, without one, your own clients'.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Publish a recorded capture's messages again, with their client ids and
    /// relative timing, through the tap (to your backend): a field incident replayed.
    Replay {
        capture: PathBuf,
        /// 1x as recorded, 10x ten times faster, or max.
        #[arg(long, default_value = "1x")]
        speed: mqtt_workbench::replay::Speed,
        /// Save the replay's own capture (to compare with the original).
        #[arg(long)]
        record: Option<PathBuf>,
        /// Evaluate this scenario's expectations against the replay (exit 1 if one fails).
        #[arg(long)]
        check: Option<PathBuf>,
    },
    /// Run scenarios headless as tests: print each expectation's verdict with
    /// its evidence; exit 1 if any failed. For CI.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write a JUnit XML report (one testsuite per scenario).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Check the expectations against a recorded capture (run --record,
        /// File → Save capture) instead of running the scenario.
        #[arg(long)]
        capture: Option<PathBuf>,
        /// Longest each scenario runs (default: the scenario's `duration`, or
        /// 60 s); it stops earlier once every verdict is final.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Run only the K-th of N parts of every fleet (K from 1) for the whole
        /// duration; its verdicts are the shard's view. `merge` the shards'
        /// recordings for the verdict of the whole fleet.
        #[arg(long, value_name = "K/N", conflicts_with = "capture")]
        shard: Option<mqtt_workbench::sim::Shard>,
        /// Save the capture (one scenario) for `merge`, `replay` or File → Open capture.
        #[arg(long, conflicts_with = "capture")]
        record: Option<PathBuf>,
        /// Check the traffic against this AsyncAPI document: one testcase per
        /// channel (unless the scenario has its own `Conforms` checks).
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Write a scenario from an AsyncAPI document (3.0 or 2.6, YAML or JSON):
    /// fleets for the channels its applications send on, payloads from its
    /// schemas, its bindings, replies as reactions, a check per channel.
    Import {
        spec: PathBuf,
        /// The scenario file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Devices per fleet.
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Seconds between a device's publishes.
        #[arg(long, default_value_t = 2)]
        every: u32,
    },
    /// Write an AsyncAPI 3.0 document from a recorded capture (`run --record`,
    /// File → Save capture): channels and parameters from the topics, a JSON
    /// Schema per channel from the payloads, bindings, senders and receivers.
    Infer {
        capture: PathBuf,
        /// The document to write (.yaml, or .json for JSON).
        #[arg(short, long)]
        output: PathBuf,
        /// Its `info.title` (default: the recorded scenario's name).
        #[arg(long)]
        title: Option<String>,
    },
    /// Run read-only SQL over a capture database (`--capture-db FILE`) and
    /// print the rows as CSV (with a header) or JSON Lines.
    Query {
        file: PathBuf,
        sql: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: mqtt_workbench::cli::QueryFormat,
        /// Print at most this many rows.
        #[arg(long, default_value_t = 1_000_000)]
        max_rows: usize,
    },
    /// Combine the recordings of sharded runs (`run`/`test --shard K/N
    /// --record …`) into one capture, and check the scenario's expectations
    /// over all of them: one report, one log. Exit 1 if an expectation failed.
    Merge {
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        /// The scenario whose expectations to evaluate over the merged capture.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Write the merged capture (JSON Lines recording) here.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Write the merged message log (.csv or .jsonl) here.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Write a JUnit XML report of the merged verdicts.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Check scenario files; errors name file, line and column.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the shipped scenarios this installation finds.
    Scenarios,
    /// Measure throughput, CPU and memory for N devices at R msg/s through tap and broker.
    Bench(BenchArgs),
    /// (internal) The publishers of `bench --devices-process`.
    #[command(hide = true)]
    BenchDevices {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        devices: u32,
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long)]
        mqtt5: bool,
    },
}

impl NetArgs {
    fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        let upstream = match &self.broker {
            Some(url) => {
                let mut b = parse_broker_url(url)?;
                if self.broker_ca.is_some() && !b.tls {
                    anyhow::bail!("--broker-ca is for a TLS broker: use --broker mqtts://…");
                }
                b.ca = self.broker_ca.clone();
                Upstream::External(b)
            }
            None => Upstream::Embedded,
        };
        let listen = mqtt_workbench::cli::listen_addr(&self.bind, self.port)?;
        let tls = (self.tls
            || self.wss
            || self.tls_keylog.is_some()
            || self.tls_cert.is_some()
            || self.tls_require_client_cert
            || self.tls_client_ca.is_some())
        .then(|| mqtt_workbench::tls::TlsOptions {
            listen: std::net::SocketAddr::new(listen.ip(), self.tls_port),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            require_client_cert: self.tls_require_client_cert,
            client_ca: self.tls_client_ca.clone(),
            keylog: self.tls_keylog.clone(),
            dir: self
                .tls_dir
                .clone()
                .unwrap_or_else(mqtt_workbench::tls::default_dir),
        });
        let auth = match &self.users {
            Some(path) => Some(std::sync::Arc::new(mqtt_workbench::tap::AuthSpec::load(
                path,
            )?)),
            None => None,
        };
        let ws_path =
            mqtt_workbench::tap::ws::WsPath::parse(&self.ws_path).map_err(anyhow::Error::msg)?;
        Ok(EngineConfig {
            auth,
            ws: self
                .ws
                .then(|| std::net::SocketAddr::new(listen.ip(), self.ws_port)),
            wss: self
                .wss
                .then(|| std::net::SocketAddr::new(listen.ip(), self.wss_port)),
            ws_path,
            listen,
            broker_listen: std::net::SocketAddr::new([127, 0, 0, 1].into(), self.broker_port),
            max_connections: self.max_connections,
            upstream,
            tls,
            capture_db: self
                .capture_db
                .clone()
                .map(|path| mqtt_workbench::database::DbOptions {
                    path,
                    max_bytes: self.capture_db_max_mib.map(|m| m * 1024 * 1024),
                    max_age: self.capture_db_max_age,
                }),
            ..EngineConfig::default()
        })
    }
}

fn init_tracing() {
    // rumqttd logs every graceful DISCONNECT at ERROR ("router-drop"): keep it quiet.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,rumqttd=off,rumqttc=off,rustls=error")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The engine needs a multi-thread runtime: the tap, the devices and the
/// batcher run concurrently, and the window never drives it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .thread_name("engine")
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(cmd) => headless(cmd, &cli.net),
        None => {
            let port_from_cli = std::env::args().any(|a| a == "--port" || a.starts_with("--port="));
            gui(cli.scenario, &cli.net, port_from_cli).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mqtt-workbench scenarios`: the shipped scenarios, or where they were looked for.
fn list_scenarios() -> ExitCode {
    let found = mqtt_workbench::sim::shipped_scenarios();
    if found.is_empty() {
        eprintln!("no shipped scenarios found; looked in:");
        for d in mqtt_workbench::sim::scenario_dirs() {
            eprintln!("  {}", d.display());
        }
        return ExitCode::FAILURE;
    }
    for p in found {
        println!("{}", p.display());
    }
    ExitCode::SUCCESS
}

/// A run whose expectations failed fails the command.
fn passed(failed: usize) -> anyhow::Result<()> {
    if failed > 0 {
        anyhow::bail!("{failed} expectation(s) failed");
    }
    Ok(())
}

/// The commands without a window: run, replay, test, merge and the benchmarks.
fn headless(cmd: Cmd, net: &NetArgs) -> anyhow::Result<ExitCode> {
    let done = match cmd {
        Cmd::Validate { files } => return Ok(mqtt_workbench::cli::validate(&files)),
        Cmd::Import {
            spec,
            output,
            count,
            every,
        } => mqtt_workbench::cli::import(
            &spec,
            &output,
            mqtt_workbench::scenario::ImportOptions {
                count,
                every_s: every.max(1),
            },
        )
        .map(|_| ()),
        Cmd::Infer {
            capture,
            output,
            title,
        } => mqtt_workbench::cli::infer(&capture, &output, title),
        Cmd::Scenarios => return Ok(list_scenarios()),
        Cmd::Run {
            scenario,
            duration,
            export,
            record,
            watch,
            shard,
            stats,
            stats_every,
            capture_events,
            connect_timeout,
            spec,
        } => net.engine_config().and_then(|mut engine| {
            engine.watch = watch;
            engine.shard = shard;
            let failed =
                runtime()?.block_on(mqtt_workbench::cli::run(mqtt_workbench::cli::RunOptions {
                    scenario,
                    duration,
                    export,
                    record,
                    stats: stats.map(|p| (p, stats_every)),
                    capture_events,
                    connect_timeout,
                    spec,
                    engine,
                }))?;
            passed(failed)
        }),
        Cmd::Replay {
            capture,
            speed,
            record,
            check,
        } => net.engine_config().and_then(|engine| {
            let failed = runtime()?.block_on(mqtt_workbench::cli::replay(
                capture, speed, record, check, engine,
            ))?;
            passed(failed)
        }),
        Cmd::Test {
            files,
            junit,
            duration,
            capture,
            shard,
            record,
            spec,
        } => net.engine_config().and_then(|mut engine| {
            // Each scenario gets its own engine: a free port unless one was asked for.
            if net.port == 1883 {
                engine.listen.set_port(0);
            }
            if record.is_some() && files.len() > 1 {
                anyhow::bail!("--record saves one scenario's capture: test one file with it");
            }
            engine.shard = shard;
            let failed = runtime()?.block_on(mqtt_workbench::cli::test(
                mqtt_workbench::cli::TestOptions {
                    files,
                    duration,
                    junit,
                    capture,
                    record,
                    spec,
                    engine,
                },
            ))?;
            passed(failed)
        }),
        Cmd::Query {
            file,
            sql,
            format,
            max_rows,
        } => mqtt_workbench::cli::query(&file, &sql, format, max_rows),
        Cmd::Merge {
            recordings,
            scenario,
            record,
            export,
            junit,
        } => mqtt_workbench::cli::merge(mqtt_workbench::cli::MergeOptions {
            recordings,
            scenario,
            record,
            export,
            junit,
        })
        .and_then(passed),
        Cmd::BenchDevices {
            host,
            port,
            devices,
            rate,
            qos,
            mqtt5,
        } => runtime().and_then(|rt| {
            rt.block_on(mqtt_workbench::bench::run_devices(
                &host,
                port,
                devices,
                rate,
                qos,
                protocol(mqtt5),
            ))
        }),
        Cmd::Bench(args) => benchmark(args, net),
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// `mqtt-workbench bench`: the evaluator alone, the window, or the pipeline.
fn benchmark(args: BenchArgs, net: &NetArgs) -> anyhow::Result<()> {
    match args {
        BenchArgs {
            checks: Some(n), ..
        } => {
            print!("{}", mqtt_workbench::bench::checks(n, 2_000_000));
            Ok(())
        }
        BenchArgs {
            contract: Some(spec),
            ..
        } => {
            print!("{}", mqtt_workbench::bench::contract(&spec, 100_000)?);
            Ok(())
        }
        BenchArgs {
            subscriptions: Some(n),
            ..
        } => net.engine_config().and_then(|mut engine| {
            if net.port == 1883 {
                engine.listen.set_port(0);
            }
            let report = runtime()?.block_on(mqtt_workbench::bench::subscriptions(engine, n))?;
            print!("{report}");
            Ok(())
        }),
        BenchArgs {
            devices,
            rate,
            duration,
            qos,
            gui: true,
            preload,
            ..
        } => net.engine_config().and_then(|mut engine| {
            if net.port == 1883 {
                engine.listen.set_port(0);
            }
            gui_with(
                None,
                engine,
                true,
                Some(mqtt_workbench::ui::FrameBench {
                    preload,
                    per_tab: duration / mqtt_workbench::ui::Tab::ALL.len() as u32,
                    devices,
                    rate_hz: rate,
                    qos,
                }),
            )
        }),
        BenchArgs {
            devices,
            rate,
            duration,
            qos,
            devices_process,
            direct,
            mqtt5,
            script,
            connect_timeout,
            transport,
            ..
        } => net.engine_config().and_then(|mut engine| {
            if net.port == 1883 {
                engine.listen.set_port(0);
            }
            use mqtt_workbench::scenario::Transport;
            if transport.contains(&Transport::Wss) && engine.tls.is_none() {
                // wss publishers need the tap's TLS: the generated certificates.
                engine.tls = Some(mqtt_workbench::tls::TlsOptions::generated(
                    std::net::SocketAddr::new(engine.listen.ip(), 0),
                    mqtt_workbench::tls::default_dir(),
                ));
            }
            let rt = runtime()?;
            let mut reports = Vec::new();
            for (i, &t) in transport.iter().enumerate() {
                if transport.len() > 1 {
                    println!(
                        "{}── publishers over {} ──",
                        if i > 0 { "\n" } else { "" },
                        t.name()
                    );
                }
                let report = rt.block_on(mqtt_workbench::bench::run(
                    mqtt_workbench::bench::BenchOptions {
                        devices,
                        rate_hz: rate,
                        duration,
                        qos,
                        protocol: protocol(mqtt5),
                        engine: engine.clone(),
                        devices_in_child: devices_process,
                        direct,
                        script,
                        connect_timeout,
                        transport: t,
                    },
                ))?;
                print!("{report}");
                reports.push((t, report));
            }
            if reports.len() > 1 {
                println!();
                print!("{}", mqtt_workbench::bench::transports_table(&reports));
            }
            Ok(())
        }),
    }
}

fn protocol(mqtt5: bool) -> mqtt_workbench::scenario::Protocol {
    if mqtt5 {
        mqtt_workbench::scenario::Protocol::V5
    } else {
        mqtt_workbench::scenario::Protocol::V311
    }
}

/// The window on the main thread; the engine on a runtime owned here, whose
/// worker threads run beside the window.
fn gui(scenario: Option<PathBuf>, net: &NetArgs, port_from_cli: bool) -> anyhow::Result<()> {
    // The window applies edits to the open scenario file as they are saved.
    let engine = EngineConfig {
        watch: true,
        ..net.engine_config()?
    };
    gui_with(scenario, engine, port_from_cli, None)
}

fn gui_with(
    scenario: Option<PathBuf>,
    engine: EngineConfig,
    port_from_cli: bool,
    frame_bench: Option<mqtt_workbench::ui::FrameBench>,
) -> anyhow::Result<()> {
    mqtt_workbench::sys::raise_fd_limit();
    let rt = runtime()?;
    let ephemeral = frame_bench.is_some();
    let result = mqtt_workbench::ui::run(mqtt_workbench::ui::AppConfig {
        engine,
        runtime: rt.handle().clone(),
        scenario,
        dialogs: Box::new(mqtt_workbench::ui::NativeDialogs),
        port_from_cli,
        ephemeral,
        frame_bench,
    });
    // Let the devices say goodbye (graceful DISCONNECT), then stop.
    rt.shutdown_timeout(std::time::Duration::from_secs(3));
    result
}

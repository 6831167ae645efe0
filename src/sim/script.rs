//! Scripted devices: a device's own logic in JavaScript, run by QuickJS
//! (through `rquickjs`).
//!
//! A scenario device with `script: "pump.js"` has its hooks called by its
//! task: `onConnect()`, `onTick()` (every `tick`), `onMessage(topic, payload,
//! props)` and `onDisconnect()`. The script acts through `device`:
//! `publish(topic, payload, {qos, retain, properties})`, `subscribe(filter,
//! qos)`, `get(name)` / `set(name, number)` (the device's vars and signals,
//! the same the declarative parts read), `state()` / `setState(name)`,
//! `after(ms, fn)`, `log(text)`, and `device.id` / `device.index`. What it
//! does is collected during the call and carried out by the device task
//! afterwards, in order.
//!
//! QuickJS contexts are not `Send`, so every script runs on one thread of its
//! own ("scripts"); device tasks send it calls and await the answer. Each
//! device has a runtime of its own: its memory cap and CPU budget per call
//! are its alone. A call past its budget is interrupted (the script cannot
//! catch that), the device is marked faulty with the script's file:line, and
//! the other devices go on. Scripts get the language and JSON, nothing else:
//! no file system, network or process. `Math.random` is seeded per device,
//! so a scenario seed replays the same bytes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::prelude::Opt;
use rquickjs::{CatchResultExt, CaughtError, Ctx, Function, Object, Persistent, Value};

pub use crate::scenario::ScriptSource;

/// Check the syntax of every script a scenario's devices run (after
/// `Scenario::load_scripts`): the first error, as file:line:column.
pub fn check(scenario: &crate::scenario::Scenario) -> Result<(), ScriptError> {
    scenario
        .devices
        .iter()
        .filter_map(|d| d.script_source.as_ref())
        .try_for_each(compile)
}

/// Limits of one device's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// CPU time one hook call may take before it is interrupted.
    pub budget: Duration,
    /// Memory the device's JavaScript heap may take.
    pub memory_bytes: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            budget: Duration::from_millis(100),
            memory_bytes: 16 << 20,
        }
    }
}

/// Where a script went wrong: file:line:column and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScriptError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// A hook the device task calls.
#[derive(Debug, Clone)]
pub enum Hook {
    Connect,
    Tick,
    Message {
        topic: String,
        payload: bytes::Bytes,
        qos: u8,
        retain: bool,
        /// MQTT 5 response topic and correlation data (as text), user properties.
        response_topic: Option<String>,
        correlation: Option<String>,
        user_properties: Vec<(String, String)>,
    },
    Disconnect,
    /// A call scheduled with `device.after`.
    Timer(u64),
}

/// Something the script did, for the device task to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptAction {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        /// MQTT 5: response topic, correlation data, content type, user properties.
        properties: Option<ScriptProps>,
    },
    Subscribe {
        filter: String,
        qos: u8,
    },
    SetVar(String, f64),
    SetState(String),
    /// Call timer `id` after this long.
    After(Duration, u64),
    Log(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptProps {
    pub response_topic: Option<String>,
    pub correlation: Option<String>,
    pub content_type: Option<String>,
    pub user_properties: Vec<(String, String)>,
}

/// The device's vars (signals included) and state as the call begins.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub vars: BTreeMap<String, f64>,
    pub state: String,
}

/// What a call did: its actions, and the error that ended it, if any.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub actions: Vec<ScriptAction>,
    pub error: Option<ScriptError>,
}

enum Request {
    Open {
        key: u64,
        device: String,
        index: u32,
        seed: u64,
        source: ScriptSource,
        limits: ScriptLimits,
        answer: tokio::sync::oneshot::Sender<Result<(), ScriptError>>,
    },
    Call {
        key: u64,
        hook: Hook,
        snapshot: Snapshot,
        answer: tokio::sync::oneshot::Sender<Reply>,
    },
    Close(u64),
}

/// Requests queued for the scripts thread. A device awaits each of its calls,
/// so this bounds opens and calls by the number of devices; a close that
/// finds it full is logged (its runtime stays until the thread ends).
const QUEUE: usize = 65_536;

/// The scripts thread, shared by every device; cheap to clone.
#[derive(Clone)]
pub struct ScriptHost {
    tx: flume::Sender<Request>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for ScriptHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptHost")
    }
}

/// One device's script, on the host. Dropping it frees the runtime.
pub struct Script {
    host: ScriptHost,
    key: u64,
}

impl ScriptHost {
    /// The process's scripts thread, started when a scripted device first needs it.
    /// None: the thread could not be started (the error was logged).
    pub fn shared() -> Option<&'static ScriptHost> {
        static HOST: std::sync::OnceLock<Option<ScriptHost>> = std::sync::OnceLock::new();
        HOST.get_or_init(|| {
            ScriptHost::start()
                .inspect_err(|e| tracing::error!("cannot start the scripts thread: {e}"))
                .ok()
        })
        .as_ref()
    }

    /// Start the scripts thread (it ends when the last handle is dropped).
    pub fn start() -> std::io::Result<ScriptHost> {
        let (tx, rx) = flume::bounded(QUEUE);
        std::thread::Builder::new()
            .name("scripts".into())
            .spawn(move || serve(rx))?;
        Ok(ScriptHost {
            tx,
            next: Arc::default(),
        })
    }

    /// Load a device's script and run its top level.
    pub async fn open(
        &self,
        device: &str,
        index: u32,
        seed: u64,
        source: ScriptSource,
        limits: ScriptLimits,
    ) -> Result<Script, ScriptError> {
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let file = source.path.display().to_string();
        let gone = || ScriptError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: "the scripts thread has stopped".into(),
        };
        self.tx
            .send_async(Request::Open {
                key,
                device: device.to_string(),
                index,
                seed,
                source,
                limits,
                answer,
            })
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())??;
        Ok(Script {
            host: self.clone(),
            key,
        })
    }
}

impl Script {
    /// Call a hook (a script without it does nothing).
    pub async fn call(&self, hook: Hook, snapshot: Snapshot) -> Reply {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let sent = self
            .host
            .tx
            .send_async(Request::Call {
                key: self.key,
                hook,
                snapshot,
                answer,
            })
            .await;
        match sent {
            Ok(()) => answered.await.unwrap_or_default(),
            Err(_) => Reply::default(),
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if self.host.tx.try_send(Request::Close(self.key)).is_err() {
            tracing::warn!("scripts queue full: a stopped device's script stays loaded");
        }
    }
}

/// Check a script's syntax (for `validate` and scenario loading).
pub fn compile(source: &ScriptSource) -> Result<(), ScriptError> {
    let rt = rquickjs::Runtime::new().map_err(|e| rust_error(source, &e))?;
    let ctx = rquickjs::Context::full(&rt).map_err(|e| rust_error(source, &e))?;
    ctx.with(|ctx| {
        let file = source.path.display().to_string();
        // Wrapped in a function that is never called: parsed, not run.
        let wrapped = format!("(function () {{\n{}\n}})", source.text);
        let mut opts = rquickjs::context::EvalOptions::default();
        opts.filename = Some(file.clone());
        let r: rquickjs::Result<Value> = ctx.eval_with_options(wrapped, opts);
        r.catch(&ctx).map(drop).map_err(|e| {
            let mut err = caught(&file, e);
            // The wrapper's first line pushed the script down by one.
            err.line = err.line.saturating_sub(1);
            err
        })
    })
}

fn rust_error(source: &ScriptSource, e: &rquickjs::Error) -> ScriptError {
    ScriptError {
        file: source.path.display().to_string(),
        line: 0,
        column: 0,
        message: e.to_string(),
    }
}

/// One device's runtime on the scripts thread.
struct Instance {
    // Dropped in this order: the context before its runtime.
    ctx: rquickjs::Context,
    _rt: rquickjs::Runtime,
    deadline: Rc<Cell<Instant>>,
    state: Rc<RefCell<CallState>>,
    file: String,
    budget: Duration,
}

/// What the `device` object reads and collects during one call.
#[derive(Default)]
struct CallState {
    snapshot: Snapshot,
    actions: Vec<ScriptAction>,
    timers: HashMap<u64, Persistent<Function<'static>>>,
    next_timer: u64,
}

fn serve(rx: flume::Receiver<Request>) {
    let mut instances: HashMap<u64, Instance> = HashMap::new();
    while let Ok(req) = rx.recv() {
        match req {
            Request::Open {
                key,
                device,
                index,
                seed,
                source,
                limits,
                answer,
            } => match Instance::new(&device, index, seed, &source, limits) {
                Ok(inst) => {
                    instances.insert(key, inst);
                    let _ = answer.send(Ok(()));
                }
                Err(e) => {
                    let _ = answer.send(Err(e));
                }
            },
            Request::Call {
                key,
                hook,
                snapshot,
                answer,
            } => {
                let reply = instances
                    .get(&key)
                    .map(|i| i.call(hook, snapshot))
                    .unwrap_or_default();
                let _ = answer.send(reply);
            }
            Request::Close(key) => {
                instances.remove(&key);
            }
        }
    }
}

impl Instance {
    fn new(
        device: &str,
        index: u32,
        seed: u64,
        source: &ScriptSource,
        limits: ScriptLimits,
    ) -> Result<Instance, ScriptError> {
        let file = source.path.display().to_string();
        let rt = rquickjs::Runtime::new().map_err(|e| rust_error(source, &e))?;
        rt.set_memory_limit(limits.memory_bytes);
        rt.set_max_stack_size(256 << 10);
        let far = || Instant::now() + Duration::from_secs(3600);
        let deadline = Rc::new(Cell::new(far()));
        let d = deadline.clone();
        rt.set_interrupt_handler(Some(Box::new(move || Instant::now() > d.get())));
        let ctx = rquickjs::Context::full(&rt).map_err(|e| rust_error(source, &e))?;
        let state: Rc<RefCell<CallState>> = Rc::default();
        ctx.with(|ctx| -> Result<(), ScriptError> {
            install(&ctx, device, index, seed, &state).map_err(|e| ScriptError {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot set up the script's `device` object: {e}"),
            })?;
            let mut opts = rquickjs::context::EvalOptions::default();
            opts.filename = Some(file.clone());
            deadline.set(Instant::now() + limits.budget);
            let r: rquickjs::Result<Value> = ctx.eval_with_options(&*source.text, opts);
            deadline.set(far());
            r.catch(&ctx).map(drop).map_err(|e| caught(&file, e))
        })?;
        Ok(Instance {
            ctx,
            _rt: rt,
            deadline,
            state,
            file,
            budget: limits.budget,
        })
    }

    fn call(&self, hook: Hook, snapshot: Snapshot) -> Reply {
        {
            let mut st = self.state.borrow_mut();
            st.snapshot = snapshot;
            st.actions.clear();
        }
        let error = self.ctx.with(|ctx| {
            self.deadline.set(Instant::now() + self.budget);
            let r = run_hook(&ctx, &self.state, hook).catch(&ctx);
            self.deadline
                .set(Instant::now() + Duration::from_secs(3600));
            r.err().map(|e| caught(&self.file, e))
        });
        let actions = std::mem::take(&mut self.state.borrow_mut().actions);
        Reply { actions, error }
    }
}

fn run_hook<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<RefCell<CallState>>,
    hook: Hook,
) -> rquickjs::Result<()> {
    let g = ctx.globals();
    let hook_fn = |name: &str| -> rquickjs::Result<Option<Function<'js>>> {
        match g.get::<_, Value>(name)? {
            v if v.is_function() => Ok(v.into_function()),
            _ => Ok(None),
        }
    };
    match hook {
        Hook::Connect => call0(hook_fn("onConnect")?),
        Hook::Tick => call0(hook_fn("onTick")?),
        Hook::Disconnect => call0(hook_fn("onDisconnect")?),
        Hook::Timer(id) => {
            let f = state.borrow_mut().timers.remove(&id);
            match f {
                Some(f) => call0(Some(f.restore(ctx)?)),
                None => Ok(()),
            }
        }
        Hook::Message {
            topic,
            payload,
            qos,
            retain,
            response_topic,
            correlation,
            user_properties,
        } => {
            let Some(f) = hook_fn("onMessage")? else {
                return Ok(());
            };
            let text = String::from_utf8_lossy(&payload).into_owned();
            let props = Object::new(ctx.clone())?;
            props.set("qos", qos)?;
            props.set("retain", retain)?;
            if let Some(t) = response_topic {
                props.set("responseTopic", t)?;
            }
            if let Some(c) = correlation {
                props.set("correlationData", c)?;
            }
            let user = Object::new(ctx.clone())?;
            for (k, v) in user_properties {
                user.set(k, v)?;
            }
            props.set("userProperties", user)?;
            // The payload parsed, when it is JSON (`props.json`).
            if let Ok(v) = ctx.json_parse(text.clone()) {
                props.set("json", v)?;
            }
            f.call::<_, ()>((topic, text, props))
        }
    }
}

fn call0(f: Option<Function<'_>>) -> rquickjs::Result<()> {
    match f {
        Some(f) => f.call::<_, ()>(()),
        None => Ok(()),
    }
}

/// The `device` object and a seeded `Math.random`.
fn install<'js>(
    ctx: &Ctx<'js>,
    device: &str,
    index: u32,
    seed: u64,
    state: &Rc<RefCell<CallState>>,
) -> rquickjs::Result<()> {
    let d = Object::new(ctx.clone())?;
    d.set("id", device)?;
    d.set("index", index)?;
    let st = state.clone();
    d.set(
        "publish",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  topic: String,
                  payload: Value<'js>,
                  opts: Opt<Option<Object<'js>>>|
                  -> rquickjs::Result<()> {
                let payload = payload_bytes(&ctx, payload)?;
                let (mut qos, mut retain, mut properties) = (0u8, false, None);
                if let Some(o) = opts.0.flatten() {
                    qos = o.get::<_, Option<u8>>("qos")?.unwrap_or(0).min(2);
                    retain = o.get::<_, Option<bool>>("retain")?.unwrap_or(false);
                    if let Some(p) = o.get::<_, Option<Object<'js>>>("properties")? {
                        properties = Some(props(&p)?);
                    }
                }
                st.borrow_mut().actions.push(ScriptAction::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    properties,
                });
                Ok(())
            },
        )?,
    )?;
    let st = state.clone();
    d.set(
        "subscribe",
        Function::new(ctx.clone(), move |filter: String, qos: Opt<u8>| {
            st.borrow_mut().actions.push(ScriptAction::Subscribe {
                filter,
                qos: qos.0.unwrap_or(0).min(2),
            });
        })?,
    )?;
    let st = state.clone();
    d.set(
        "get",
        Function::new(ctx.clone(), move |name: String| -> Option<f64> {
            st.borrow().snapshot.vars.get(&name).copied()
        })?,
    )?;
    let st = state.clone();
    d.set(
        "set",
        Function::new(ctx.clone(), move |name: String, value: f64| {
            let mut s = st.borrow_mut();
            s.snapshot.vars.insert(name.clone(), value);
            s.actions.push(ScriptAction::SetVar(name, value));
        })?,
    )?;
    let st = state.clone();
    d.set(
        "state",
        Function::new(ctx.clone(), move || -> String {
            st.borrow().snapshot.state.clone()
        })?,
    )?;
    let st = state.clone();
    d.set(
        "setState",
        Function::new(ctx.clone(), move |name: String| {
            let mut s = st.borrow_mut();
            s.snapshot.state = name.clone();
            s.actions.push(ScriptAction::SetState(name));
        })?,
    )?;
    let st = state.clone();
    d.set(
        "after",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, ms: f64, f: Function<'js>| -> u64 {
                let mut s = st.borrow_mut();
                s.next_timer += 1;
                let id = s.next_timer;
                s.timers.insert(id, Persistent::save(&ctx, f));
                let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
                s.actions.push(ScriptAction::After(
                    Duration::from_secs_f64(ms / 1000.0),
                    id,
                ));
                id
            },
        )?,
    )?;
    let st = state.clone();
    d.set(
        "log",
        Function::new(
            ctx.clone(),
            move |text: rquickjs::prelude::Coerced<String>| {
                st.borrow_mut().actions.push(ScriptAction::Log(text.0));
            },
        )?,
    )?;
    ctx.globals().set("device", d)?;
    // xorshift64*, seeded per device (through splitmix64, so that nearby
    // seeds start far apart): the same seed gives the same numbers.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let rng = Cell::new((z ^ (z >> 31)).max(1));
    let math: Object = ctx.globals().get("Math")?;
    math.set(
        "random",
        Function::new(ctx.clone(), move || -> f64 {
            let mut x = rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            rng.set(x);
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        })?,
    )?;
    Ok(())
}

/// A payload argument: a string as is, bytes (`Uint8Array`) as is, anything else as JSON.
fn payload_bytes<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> rquickjs::Result<Vec<u8>> {
    if let Some(s) = v.as_string() {
        return Ok(s.to_string()?.into_bytes());
    }
    if let Some(b) = v
        .as_object()
        .and_then(|o| rquickjs::TypedArray::<u8>::from_object(o.clone()).ok())
    {
        // SAFETY: the slice is copied at once; no JavaScript runs while it lives.
        let bytes = unsafe { b.as_bytes() }.map(<[u8]>::to_vec);
        return Ok(bytes.unwrap_or_default());
    }
    Ok(ctx
        .json_stringify(v)?
        .map(|s| s.to_string())
        .transpose()?
        .unwrap_or_default()
        .into_bytes())
}

fn props<'js>(p: &Object<'js>) -> rquickjs::Result<ScriptProps> {
    let mut out = ScriptProps {
        response_topic: p.get("responseTopic")?,
        correlation: p.get("correlationData")?,
        content_type: p.get("contentType")?,
        user_properties: Vec::new(),
    };
    if let Some(user) = p.get::<_, Option<Object<'js>>>("userProperties")? {
        for kv in user.props::<String, rquickjs::prelude::Coerced<String>>() {
            let (k, v) = kv?;
            out.user_properties.push((k, v.0));
        }
    }
    Ok(out)
}

/// The error a call ended with, located in the script: QuickJS gives the
/// place in the stack text (`at onTick (pump.js:12:5)`), a syntax error in
/// its first line.
fn caught(file: &str, e: CaughtError<'_>) -> ScriptError {
    let (message, stack) = match &e {
        CaughtError::Exception(x) => {
            let name: Option<String> = x.get("name").ok();
            let msg = x.message().unwrap_or_default();
            let msg = match name {
                Some(n) if !n.is_empty() => format!("{n}: {msg}"),
                _ => msg,
            };
            (msg, x.stack().unwrap_or_default())
        }
        CaughtError::Value(v) => (
            match v.as_string().and_then(|s| s.to_string().ok()) {
                Some(s) => format!("uncaught {s}"),
                None => format!("uncaught {v:?}"),
            },
            String::new(),
        ),
        CaughtError::Error(e) => (e.to_string(), String::new()),
    };
    let message = if message.contains("interrupted") {
        "interrupted: the call ran past its CPU budget".to_string()
    } else {
        message
    };
    let (line, column) = locate(&stack, file).unwrap_or((0, 0));
    ScriptError {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// The first `file:line:column` of `file` in a stack text.
fn locate(stack: &str, file: &str) -> Option<(u32, u32)> {
    let needle = format!("{file}:");
    stack.lines().find_map(|l| {
        let at = l.find(&needle)? + needle.len();
        let rest = &l[at..];
        let mut parts = rest.split(|c: char| !c.is_ascii_digit());
        let line = parts.next()?.parse().ok()?;
        let column = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        Some((line, column))
    })
}

#[cfg(test)]
mod tests;

//! Why the engine could not do what it was asked: start up, read a file,
//! load a scenario. Every message names the port, file or option at fault.
//!
//! Clone (the causes are shared), so start-up's failure can be both the
//! answer to [`super::EngineHandle::ready`] and part of its
//! [`super::Readiness`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use crate::broker::BrokerError;
use crate::export::record::RecordError;
use crate::scenario::ScenarioError;
use crate::tls::TlsError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The tap's port is taken; `free_port` is the next one that is not.
    #[error("port {port} on {ip} is already in use ({error}); choose another with --port")]
    PortInUse {
        ip: IpAddr,
        port: u16,
        error: Arc<std::io::Error>,
        free_port: Option<u16>,
    },
    /// A listener beside the plain one could not bind.
    #[error(
        "{what} {port} on {ip} is already in use ({error}); choose another (--tls-port, --ws-port, --wss-port)"
    )]
    PortsInUse {
        ip: IpAddr,
        port: u16,
        what: &'static str,
        error: Arc<std::io::Error>,
    },
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: Arc<std::io::Error>,
    },
    /// The tap's own TLS listener.
    #[error("TLS: {0}")]
    Tls(Arc<TlsError>),
    /// TLS towards an external broker (`--broker mqtts://…`).
    #[error("TLS to the broker: {0}")]
    BrokerTls(Arc<TlsError>),
    #[error("{0}")]
    Broker(Arc<BrokerError>),
    #[error("{0}")]
    Scenario(Arc<ScenarioError>),
    /// A decoder rule's `.proto` schema that does not compile (file and why).
    #[error("{0}")]
    ProtoSchema(String),
    /// A device's script that cannot be read or does not parse (file:line:column and why).
    #[error("{0}")]
    Script(String),
    /// A scenario too large for this machine.
    #[error("{scenario}: {why}")]
    ScenarioRefused { scenario: String, why: String },
    #[error("{0}")]
    Recording(Arc<RecordError>),
    #[error("capture database: {0}")]
    Database(Arc<crate::database::DbError>),
    /// A search or query with no database to read.
    #[error(
        "no capture database: start with --capture-db FILE, turn it on in Settings, or open one with File → Open capture"
    )]
    NoDatabase,
    #[error("{}: {error}", path.display())]
    File {
        path: PathBuf,
        error: Arc<std::io::Error>,
    },
    /// A payload file larger than a frame the tap takes.
    #[error("{}: {len} bytes is more than the 1 MiB a message may carry here", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    /// A blocking job panicked or was cancelled.
    #[error("{what}: {error}")]
    Task {
        what: &'static str,
        error: Arc<tokio::task::JoinError>,
    },
    #[error("the engine stopped")]
    Stopped,
}

impl EngineError {
    /// A free port to suggest when the tap's was taken.
    pub fn free_port(&self) -> Option<u16> {
        match self {
            EngineError::PortInUse { free_port, .. } => *free_port,
            _ => None,
        }
    }

    pub(super) fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
        move |error| EngineError::File {
            path: path.to_path_buf(),
            error: Arc::new(error),
        }
    }

    pub(super) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> EngineError {
        move |error| EngineError::Task {
            what,
            error: Arc::new(error),
        }
    }
}

impl From<BrokerError> for EngineError {
    fn from(e: BrokerError) -> Self {
        EngineError::Broker(Arc::new(e))
    }
}

impl From<ScenarioError> for EngineError {
    fn from(e: ScenarioError) -> Self {
        EngineError::Scenario(Arc::new(e))
    }
}

impl From<RecordError> for EngineError {
    fn from(e: RecordError) -> Self {
        EngineError::Recording(Arc::new(e))
    }
}

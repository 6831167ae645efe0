//! The headless commands: `run`, `test`, `merge`, `replay`, `import` and
//! `infer`, and what they print. One file per command; `report.rs` holds the text they share.

use std::net::SocketAddr;

use anyhow::Context;

mod junit;
mod merge;
mod query;
mod replay;
mod report;
mod run;
mod spec;
mod stats;
mod test;
mod validate;

pub use junit::{SuiteResult, junit_xml};
pub use merge::{MergeOptions, merge};
pub use query::{QueryFormat, query, render as render_query};
pub use replay::replay;
pub use report::{broker_health_failure, status_line, summary, tls_summary, verdicts_text};
pub use run::{RunOptions, close_database, run, save_recording};
pub use spec::{import, infer, with_spec};
pub use stats::Stats;
pub use test::{TestOptions, check_recording, test};
pub use validate::validate;

/// Where the tap listens: `--bind` address with `--port`.
pub fn listen_addr(bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let ip: std::net::IpAddr = bind
        .parse()
        .with_context(|| format!("--bind {bind}: not an IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

//! `mqtt-workbench validate`: scenario files checked as the engine loads
//! them (its scripts, `.proto` files and AsyncAPI document too), and whether
//! this machine holds their fleets.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::scenario::Scenario;

/// Check each file; exit 2 if one does not load or does not fit this machine.
pub fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    let capacity = crate::sys::device_capacity();
    for f in files {
        let dir = f.parent().unwrap_or(std::path::Path::new("."));
        let loaded = Scenario::load(f)
            .map_err(|e| e.to_string())
            .and_then(|mut s| {
                s.compile_protos(dir)?;
                s.load_scripts(dir)?;
                s.load_contract(dir).map_err(|e| e.to_string())?;
                crate::sim::script::check(&s).map_err(|e| e.to_string())?;
                Ok(s)
            });
        match loaded {
            Ok(s) => match capacity.refuse(s.device_count() as u64) {
                None => println!(
                    "{}: ok ({}: {} devices; this machine holds about {} in one process)",
                    f.display(),
                    s.name,
                    s.device_count(),
                    capacity.devices()
                ),
                Some(why) => {
                    eprintln!("{}: valid, but {why}", f.display());
                    failed = true;
                }
            },
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

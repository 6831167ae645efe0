//! The scenario parser and validator on arbitrary text: a scenario or an
//! error that names a line and column, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mqtt_workbench::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scenario) = Scenario::parse(text, Path::new("fuzz.ron")) {
        // What parsed writes back and parses again.
        let again = scenario.to_ron();
        assert!(
            Scenario::parse(&again, Path::new("again.ron")).is_ok(),
            "a parsed scenario writes back to one that parses: {again}"
        );
    }
});

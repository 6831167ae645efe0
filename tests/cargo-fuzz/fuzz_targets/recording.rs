//! The recording reader (File → Open capture, `replay`, `test --capture`) on
//! arbitrary bytes: a recording or an error naming the line, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mqtt_workbench::export::record::read_from;

fuzz_target!(|data: &[u8]| {
    let _ = read_from(data, Path::new("fuzz.jsonl"));
});

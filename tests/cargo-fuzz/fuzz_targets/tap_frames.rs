//! The tap's frame decoder (rumqttc's codecs, MQTT 3.1.1 or 5 as the first
//! byte says) on arbitrary bytes in both directions: it returns frames or an
//! error, never panics, and never claims more bytes than it was given.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mqtt_workbench::wire::Direction;
use mqtt_workbench::tap::decode_frames;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let dir = if mode & 1 == 0 {
        Direction::ClientToBroker
    } else {
        Direction::BrokerToClient
    };
    let mut aliases = HashMap::new();
    let v5 = mode & 2 != 0;
    let mut frames = 0usize;
    let outcome = decode_frames(
        bytes,
        dir,
        1,
        &OnceLock::new(),
        v5.then_some(&mut aliases),
        &mut |_, range| {
            assert!(range.end <= bytes.len());
            frames += 1;
        },
    );
    assert!(outcome.consumed <= bytes.len());
});

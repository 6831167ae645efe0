//! The embedded broker's own packet readers (rumqttd's MQTT 3.1.1 and 5
//! codecs, the CONNECT reader among them) on arbitrary bytes: every packet
//! reads or is an error, never a panic; what reads is written back.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rumqttd::protocol::Protocol;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;

fn read_all(mut protocol: impl Protocol, bytes: &[u8]) {
    let mut stream = BytesMut::from(bytes);
    // Each successful read consumes a frame: bounded by the input's length.
    while let Ok(packet) = protocol.read_mut(&mut stream, 1024 * 1024) {
        let mut out = BytesMut::new();
        let _ = protocol.write(packet, &mut out);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        read_all(V4, bytes);
    } else {
        read_all(V5, bytes);
    }
});

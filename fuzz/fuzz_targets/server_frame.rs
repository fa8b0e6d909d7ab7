//! Fuzzes decoding a server frame as the web app and the terminal client do
//! (`serde_json::from_str::<ServerMsg>`): never a panic, and whatever decodes
//! comes back unchanged through `to_json`.
#![no_main]

use hubbub_protocol::ServerMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) {
        let json = msg.to_json();
        let back: ServerMsg = serde_json::from_str(&json).expect("to_json output decodes");
        assert_eq!(back, msg, "re-encoded as {json}");
    }
});

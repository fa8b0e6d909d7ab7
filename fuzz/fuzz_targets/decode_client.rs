//! Fuzzes `decode_client`, the first thing every client frame meets.
//!
//! Any input must get an answer (a message or one of the four decode errors,
//! with a non-empty text), never a panic; a decoded message must be a JSON
//! object and survive re-encoding and decoding unchanged. The same
//! properties, with shorter runs, are in shared/tests/decode_props.rs.
#![no_main]

use hubbub_protocol::{decode_client, ErrorCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is valid UTF-8 (tungstenite closes with 1007
    // otherwise); invalid bytes still make useful, lossily decoded text.
    let text = String::from_utf8_lossy(data);
    match decode_client(&text) {
        Ok(msg) => {
            let value: serde_json::Value =
                serde_json::from_str(&text).expect("a decoded frame is JSON");
            assert!(value.is_object(), "decoded a non-object: {text:?}");
            let json = serde_json::to_string(&msg).expect("ClientMsg serializes");
            assert_eq!(
                decode_client(&json).as_ref(),
                Ok(&msg),
                "re-encoded as {json}"
            );
        }
        Err(err) => {
            assert!(
                matches!(
                    err.code(),
                    ErrorCode::BadJson
                        | ErrorCode::MissingType
                        | ErrorCode::UnknownType
                        | ErrorCode::BadField
                ),
                "{err:?}"
            );
            assert!(!err.to_string().is_empty(), "{err:?}");
        }
    }
});

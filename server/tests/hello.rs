//! Before `hello`: every request but `ping` and `quit` is refused with
//! `hello_required`, and the refusal names the request (its `client_id`
//! and `room`) like every other `error`.

mod common;

use common::{Client, TestServer};
use hubbub_protocol::ServerMsg;
use serde_json::json;

#[tokio::test]
async fn an_error_before_hello_names_the_refused_request() {
    let server = TestServer::default().await;
    let mut client = Client::connect(&server.url()).await;
    let cases = [
        (
            json!({"type": "send", "room": "lobby", "text": "hi", "client_id": "c-1"}),
            Some("c-1"),
            Some("lobby"),
        ),
        (
            json!({"type": "react", "room": "attic", "seq": 1, "emoji": "👍", "on": true, "client_id": "c-2"}),
            Some("c-2"),
            Some("attic"),
        ),
        (
            json!({"type": "join", "room": "kitchen"}),
            None,
            Some("kitchen"),
        ),
        (
            json!({"type": "history", "room": "attic"}),
            None,
            Some("attic"),
        ),
        (json!({"type": "rooms"}), None, None),
    ];
    for (request, want_client_id, want_room) in cases {
        client.send(request.clone()).await;
        match client.expect_error("hello_required").await {
            ServerMsg::Error {
                client_id, room, ..
            } => {
                assert_eq!(client_id.as_deref(), want_client_id, "{request}");
                assert_eq!(room.as_deref(), want_room, "{request}");
            }
            other => unreachable!("{other:?}"),
        }
    }
    // The connection is still there for the hello.
    client.hello("alice").await;
}

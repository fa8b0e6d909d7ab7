//! Graceful shutdown: clients are told 1001 and the server returns in time.

mod common;

use common::{Ended, TestServer};
use hubbub_protocol::close;

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_and_returns() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    bob.drain().await;
    server.shutdown().await;
    assert_eq!(alice.ended().await, Ended::Close(close::GOING_AWAY));
    assert_eq!(bob.ended().await, Ended::Close(close::GOING_AWAY));
}

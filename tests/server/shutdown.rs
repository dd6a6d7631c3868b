//! Graceful shutdown of a MeshServer: what in-flight requests, kept-alive HTTP/1.1
//! connections, HTTP/2 connections and new connections see, and when `serve` returns.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::{Gate, Running, app, config, get1, get2, h1, h2, request};

const DRAIN: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_secs(30);

async fn server(gate: &Arc<Gate>, drain: Duration, grace: Duration) -> Running {
    Running::start(
        "127.0.0.1:0".parse().unwrap(),
        config(drain, grace),
        app(gate.clone()),
    )
    .await
}

/// Starts shutting `server` down and lets it act on it; new connections are refused from
/// then on.
async fn begin_shutdown(server: &mut Running) {
    server.shutdown();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let refused = TcpStream::connect(server.addr).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after shutdown began"
    );
}

#[tokio::test(start_paused = true)]
async fn an_in_flight_request_finishes_after_shutdown_starts() {
    let gate = Arc::new(Gate::default());
    let mut server = server(&gate, DRAIN, GRACE).await;
    let (mut sender, conn) = h1(server.addr).await;
    let slow = tokio::spawn(async move { get1(&mut sender, "/slow", &[]).await });
    gate.wait_entered(1).await;

    let start = Instant::now();
    begin_shutdown(&mut server).await;
    assert!(!server.is_finished());
    gate.open(1);
    let answer = slow.await.unwrap();
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (200, "slow")
    );
    assert_eq!(answer.header("connection"), "close");
    conn.await.unwrap();
    // Its only connection closed: serve returns without waiting for the drain period.
    server.stopped().await;
    assert!(start.elapsed() < DRAIN);
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_http1_connection_is_answered_then_closed_during_drain() {
    let gate = Arc::new(Gate::default());
    let mut server = server(&gate, DRAIN, GRACE).await;
    let (mut sender, conn) = h1(server.addr).await;
    let before = get1(&mut sender, "/", &[]).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.header("connection"), "");

    begin_shutdown(&mut server).await;
    tokio::time::sleep(DRAIN / 2).await;
    let during = get1(&mut sender, "/", &[]).await;
    assert_eq!((during.status.as_u16(), during.body.as_str()), (200, "ok"));
    assert_eq!(during.header("connection"), "close");
    // The server closes the connection after that answer.
    conn.await.unwrap();
    server.stopped().await;
}

#[tokio::test(start_paused = true)]
async fn idle_http1_connections_close_when_the_drain_period_ends() {
    let gate = Arc::new(Gate::default());
    let mut server = server(&gate, DRAIN, GRACE).await;
    let (mut sender, conn) = h1(server.addr).await;
    assert_eq!(get1(&mut sender, "/", &[]).await.status, 200);

    let start = Instant::now();
    begin_shutdown(&mut server).await;
    conn.await.unwrap();
    assert!(
        start.elapsed() >= DRAIN,
        "closed after {:?}",
        start.elapsed()
    );
    server.stopped().await;
    assert!(start.elapsed() < GRACE);

    // With no drain period they close at once.
    let mut server = self::server(&gate, Duration::ZERO, GRACE).await;
    let (mut sender, conn) = h1(server.addr).await;
    assert_eq!(get1(&mut sender, "/", &[]).await.status, 200);
    let start = Instant::now();
    begin_shutdown(&mut server).await;
    conn.await.unwrap();
    server.stopped().await;
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn an_h2_connection_gets_goaway_while_its_stream_finishes() {
    let gate = Arc::new(Gate::default());
    let mut server = server(&gate, DRAIN, GRACE).await;
    let (sender, conn) = h2(server.addr).await;
    assert_eq!(get2(&sender, "/", &[]).await.status, 200);
    let slow = {
        let sender = sender.clone();
        tokio::spawn(async move { get2(&sender, "/slow", &[]).await })
    };
    gate.wait_entered(1).await;

    let start = Instant::now();
    begin_shutdown(&mut server).await;
    // GOAWAY: the connection takes no new stream, well before the drain period ends.
    let refused = sender.clone().send_request(request("/", &[])).await;
    assert!(refused.is_err(), "a new stream was served after GOAWAY");
    assert!(start.elapsed() < DRAIN);

    gate.open(1);
    let answer = slow.await.unwrap();
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (200, "slow")
    );
    conn.await.unwrap();
    server.stopped().await;
    assert!(start.elapsed() < DRAIN);
}

#[tokio::test(start_paused = true)]
async fn after_the_grace_period_stuck_requests_are_cut() {
    let gate = Arc::new(Gate::default());
    let (drain, grace) = (Duration::from_secs(1), Duration::from_secs(3));
    let mut server = server(&gate, drain, grace).await;
    let (mut sender1, _conn1) = h1(server.addr).await;
    let (sender2, _conn2) = h2(server.addr).await;
    let stuck1 = tokio::spawn(async move {
        sender1.ready().await.unwrap();
        sender1.send_request(request("/slow", &[])).await
    });
    let stuck2 = tokio::spawn(async move {
        let mut sender2 = sender2;
        sender2.send_request(request("/slow", &[])).await
    });
    gate.wait_entered(2).await;

    let start = Instant::now();
    begin_shutdown(&mut server).await;
    server.stopped().await;
    assert!(
        start.elapsed() >= grace,
        "returned after {:?}",
        start.elapsed()
    );
    assert!(stuck1.await.unwrap().is_err());
    assert!(stuck2.await.unwrap().is_err());
}

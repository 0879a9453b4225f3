//! Server memory per open subscription (BENCHMARKS.md, "WebSocket subscriptions: memory").
//!
//! Opens `--connections` sockets against a running server, each initialised with `--key` and
//! holding `--per-connection` `llmRunAdded` subscriptions, reads the server's RSS
//! (`/proc/<pid>/status`) before, while open and after closing, and does it `--cycles` times: if
//! the RSS after the second close is where the first left it, the memory is reused by the
//! allocator rather than leaked. With `--trim` each reading follows glibc's `malloc_trim(0)`
//! in the server (through gdb), which hands free pages back: the live heap.
//!
//!     cargo run --release --example ws_memory -- --url ws://127.0.0.1:18472/graphql \
//!       --key "$KEY" --pid "$SERVER_PID" --connections 1000 --per-connection 1
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: fail loudly

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    url: String,
    key: String,
    pid: u32,
    connections: usize,
    per_connection: usize,
    cycles: usize,
    settle: Duration,
    /// Call glibc's `malloc_trim(0)` in the server (through gdb) before each reading, so the
    /// reading is the live heap rather than what the allocator keeps for reuse.
    trim: bool,
}

fn args() -> Args {
    let mut out = Args {
        url: "ws://127.0.0.1:8080/graphql".into(),
        key: String::new(),
        pid: 0,
        connections: 1000,
        per_connection: 1,
        cycles: 2,
        settle: Duration::from_secs(3),
        trim: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--trim" {
            out.trim = true;
            continue;
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => out.url = value,
            "--key" => out.key = value,
            "--pid" => out.pid = value.parse().expect("--pid"),
            "--connections" => out.connections = value.parse().expect("--connections"),
            "--per-connection" => out.per_connection = value.parse().expect("--per-connection"),
            "--cycles" => out.cycles = value.parse().expect("--cycles"),
            "--settle" => out.settle = Duration::from_secs(value.parse().expect("--settle")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        out.pid > 0 && !out.key.is_empty(),
        "--pid and --key are required"
    );
    out
}

/// The server's resident set, in MiB (after `malloc_trim(0)` with `--trim`).
fn rss_mib(args: &Args) -> f64 {
    let pid = args.pid;
    if args.trim {
        // gdb may exit non-zero after a successful call (it cannot restore some register
        // state on detach); the RSS reading shows whether the trim happened.
        std::process::Command::new("gdb")
            .args([
                "-p",
                &pid.to_string(),
                "-batch",
                "-ex",
                "call (int)malloc_trim(0)",
            ])
            .output()
            .expect("run gdb");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server pid");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// One socket, initialised, holding `n` subscriptions until `stop` fires; answers pings.
async fn hold(
    args: &Args,
    n: usize,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut request = args.url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", args.key) } })))
        .await
        .unwrap();
    for i in 0..n {
        ws.send(send(
            json!({ "id": i.to_string(), "type": "subscribe", "payload": {
            "query": "subscription { llmRunAdded { cursor node { recordId } } }" } }),
        ))
        .await
        .unwrap();
    }
    ws.send(send(json!({ "type": "ping" }))).await.unwrap();
    let mut signalled = false;
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap();
                    match message["type"].as_str() {
                        Some("pong") if !signalled => {
                            signalled = true;
                            let _ = ready.send(()).await;
                        }
                        Some("connection_ack") | Some("pong") => {}
                        Some("ping") => ws.send(send(json!({ "type": "pong" }))).await.unwrap(),
                        _ => panic!("unexpected message: {message}"),
                    }
                }
                Some(Ok(Message::Close(frame))) => panic!("closed by the server: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("socket ended"),
            },
            _ = stop.changed() => break,
        }
    }
    let _ = ws.close(None).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {}
}

#[tokio::main]
async fn main() {
    let args: &'static Args = Box::leak(Box::new(args()));
    let subscriptions = args.connections * args.per_connection;
    println!(
        "{} connections x {} subscriptions = {subscriptions}",
        args.connections, args.per_connection
    );
    let baseline = rss_mib(args);
    println!("baseline RSS {baseline:.1} MiB");
    for cycle in 1..=args.cycles {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.connections);
        let before = rss_mib(args);
        let mut tasks = Vec::new();
        for _ in 0..args.connections {
            let (ready, stop) = (ready_tx.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(hold(args, args.per_connection, ready, stop)));
            // Keep the accept queue short.
            tokio::task::yield_now().await;
        }
        for _ in 0..args.connections {
            ready_rx.recv().await.expect("every socket ready");
        }
        // Let every subscription take its starting position.
        tokio::time::sleep(args.settle).await;
        let open = rss_mib(args);
        stop_tx.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        tokio::time::sleep(args.settle).await;
        let closed = rss_mib(args);
        println!(
            "cycle {cycle}: before {before:.1} MiB, open {open:.1} MiB (+{:.1} MiB, {:.1} KiB per subscription), after close {closed:.1} MiB",
            open - before,
            (open - before) * 1024.0 / subscriptions as f64
        );
    }
}

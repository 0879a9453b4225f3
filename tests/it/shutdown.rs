//! Graceful shutdown (SIGTERM/SIGINT in `serve`, `RunningServer::shutdown` here): a request in
//! flight still gets its answer, new connections are refused, WebSockets close with 1001, and the
//! export job the worker held is handed back so another process finishes it at once instead of
//! waiting out the lease.

use std::time::{Duration, Instant};

use logbook::auth::Role;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exports_writes::{export_dir, fast, finished, mid_export};
use crate::subscriptions::{Ws, RUNS};
use crate::support::{Backend, TestApp};

async fn in_flight_requests_finish_and_sockets_close(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let mut socket = Ws::with_key(&app, &key).await;
    socket.subscribe("1", RUNS, json!({})).await;

    // A request whose body is still arriving when the shutdown starts.
    let body = json!({ "query": "{ viewer { role } }" }).to_string();
    let (first, rest) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let TestApp {
        server,
        state,
        base,
        ..
    } = app;
    let addr = server.addr;
    let stopping = tokio::spawn(server.shutdown());

    assert_eq!(
        socket.close_code().await,
        1001,
        "the socket closes as going away"
    );
    stream
        .write_all(rest.as_bytes())
        .await
        .expect("send the rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""role":"VIEWER""#), "{answer}");

    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops within the grace period")
        .expect("joined")
        .expect("served cleanly");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "{base} still accepts connections"
    );
    let _ = state.db.close().await;
}

async fn the_export_job_is_handed_back(backend: Backend) {
    let dir = export_dir();
    // A lease far longer than the test: the second process can only have the job at once if
    // the first handed it back.
    let (first, key, id) = mid_export(backend, &dir, Duration::from_secs(120)).await;
    let url = first.database_url();
    let TestApp { server, state, .. } = first;
    server.shutdown().await.expect("graceful stop");
    let _ = state.db.close().await;

    let started = Instant::now();
    let second = TestApp::spawn_on(backend, url, |c| {
        fast(c, &dir);
        c.exports.lease_ttl = Duration::from_secs(120);
    })
    .await;
    let done = finished(&second, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(done["rowCount"], "40");
    // The interrupted attempt did not count against the job.
    assert_eq!(done["job"]["attempt"], 1, "{done:#}");
    let events = done["job"]["events"].as_array().expect("events");
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    let released = events
        .iter()
        .any(|e| e["eventType"] == "job_retried" && e["metadata"].to_string().contains("released"));
    assert!(released, "{events:#?}");
    assert!(!kinds.contains(&"job_reclaimed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"job_completed"));
    second.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

crate::cases!(
    in_flight_requests_finish_and_sockets_close,
    the_export_job_is_handed_back
);

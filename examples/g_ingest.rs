//! g_ingest (BENCHMARKS.md, "Scenarios and targets"): `recordSteps` in batches of 100 steps, every
//! call with its own idempotency key, from `--concurrency` workers for `--seconds`; prints steps/s
//! and latency.
//!
//!     cargo run --release --example g_ingest -- --url http://127.0.0.1:8080 --key <INGEST key> \
//!         [--concurrency 16] [--seconds 10] [--batch 100] [--batches-per-trace 100]
//!
//! Each worker starts its own trace, appends batches with ascending step indexes and starts a
//! new trace every `--batches-per-trace` batches. Any GraphQL error stops the run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const START: &str = "mutation($input: StartTraceInput!) { startTrace(input: $input) { traceId } }";
const RECORD: &str = "mutation($t: String!, $s: [TraceStepInput!]!, $k: String) { \
    recordSteps(traceId: $t, steps: $s, idempotencyKey: $k) { insertedCount } }";

struct Options {
    url: String,
    key: String,
    concurrency: usize,
    seconds: u64,
    batch: i32,
    batches_per_trace: i32,
}

fn options() -> Options {
    let mut o = Options {
        url: "http://127.0.0.1:8080".into(),
        key: String::new(),
        concurrency: 16,
        seconds: 10,
        batch: 100,
        batches_per_trace: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--url" => o.url = value,
            "--key" => o.key = value,
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency N"),
            "--seconds" => o.seconds = value.parse().expect("--seconds N"),
            "--batch" => o.batch = value.parse().expect("--batch N"),
            "--batches-per-trace" => o.batches_per_trace = value.parse().expect("N"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(!o.key.is_empty(), "--key <INGEST api key> is required");
    o
}

async fn post(http: &reqwest::Client, o: &Options, query: &str, variables: Value) -> Value {
    let body: Value = http
        .post(format!("{}/graphql", o.url))
        .bearer_auth(&o.key)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("JSON response");
    if body.get("errors").is_some() {
        panic!("GraphQL error: {body}");
    }
    body
}

fn batch(first: i32, n: i32) -> Value {
    Value::Array(
        (first..first + n)
            .map(|i| {
                json!({
                    "stepIndex": i,
                    "skillName": if i % 3 == 0 { "llm_invoke" } else { "http_call" },
                    "params": {"model": "claude-sonnet-4-5", "temperature": 0.2, "max_tokens": 1024,
                               "prompt_template": "triage.v3", "attempt": i},
                    "status": if i % 17 == 0 { "retry" } else { "success" },
                    "outcomeCategory": "SUCCESS",
                    "outcomeData": {"tokens": 512, "summary": "ok"},
                    "costCents": 0.42,
                    "durationMs": 118.5,
                })
            })
            .collect(),
    )
}

/// One worker: (steps inserted, per-request latencies).
async fn worker(id: usize, o: &Options, run: &str, until: Instant) -> (u64, Vec<Duration>) {
    let http = reqwest::Client::new();
    let mut inserted = 0u64;
    let mut latencies = Vec::new();
    let mut trace_no = 0;
    'traces: loop {
        let run_id = format!("{run}-w{id}-t{trace_no}");
        let started = post(&http, o, START, json!({"input": {"runId": run_id}})).await;
        let trace_id = started["data"]["startTrace"]["traceId"]
            .as_str()
            .expect("traceId")
            .to_owned();
        for b in 0..o.batches_per_trace {
            if Instant::now() >= until {
                break 'traces;
            }
            let key = format!("{run_id}-b{b}");
            let at = Instant::now();
            let body = post(
                &http,
                o,
                RECORD,
                json!({"t": trace_id, "s": batch(b * o.batch, o.batch), "k": key}),
            )
            .await;
            latencies.push(at.elapsed());
            inserted += body["data"]["recordSteps"]["insertedCount"]
                .as_u64()
                .expect("insertedCount");
        }
        trace_no += 1;
    }
    (inserted, latencies)
}

#[tokio::main]
async fn main() {
    let o = options();
    let run = format!(
        "gi{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    );
    let begin = Instant::now();
    let until = begin + Duration::from_secs(o.seconds);
    let o = &o;
    let run = &run;
    let results =
        futures_util::future::join_all((0..o.concurrency).map(|id| worker(id, o, run, until)))
            .await;
    let elapsed = begin.elapsed().as_secs_f64();
    let steps: u64 = results.iter().map(|r| r.0).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.1).collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "g_ingest: concurrency {} batch {} | {} requests, {} steps in {:.1} s | {:.0} steps/s, \
         {:.0} req/s | latency p50 {:.1} ms p99 {:.1} ms",
        o.concurrency,
        o.batch,
        latencies.len(),
        steps,
        elapsed,
        steps as f64 / elapsed,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
}

//! The OTLP/HTTP trace receiver, `POST /v1/traces` (docs/otlp.md): OpenTelemetry SDKs and
//! instrumentations (OpenLLMetry, OpenInference, the GenAI semantic conventions) send their
//! spans here, and Logbook stores them as traces, steps, LLM run records and system records.
//!
//! - Bodies: `application/x-protobuf` or `application/json`, optionally gzip
//!   (`Content-Encoding`), at most `max_body_bytes` once decompressed (413 past it).
//! - Auth: an INGEST (or ADMIN) key, `Authorization: Bearer`.
//! - Answer: `ExportTraceServiceResponse` in the request's encoding; spans refused (bad ids,
//!   a sealed trace) are counted in `partialSuccess.rejectedSpans` with a message.
//! - Back-pressure: at most `max_in_flight_per_key` requests of one key and `max_in_flight`
//!   in all are worked on at once in a process; past either the answer is 429 or 503 with
//!   `Retry-After`, as the OTLP specification asks, and nothing is buffered.
//! - Sealing: the batch that brings the root span seals the trace when the root ends last;
//!   otherwise the trace is sealed once no span arrived for `seal_after` ([`spawn_sealer`]).
//! - Retries: an exporter resends whole batches; a span already stored (tenant, trace id, span
//!   id) is accepted and not written again, in any process (`store`).

pub mod mapping;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::auth::{self, Permission, TenantId};
pub use crate::config::otlp::OtlpSettings;
use crate::error::AppError;
use crate::events::Topic;
use crate::state::AppState;

/// The process's in-flight counts (no queue: a request over a limit is refused at once).
#[derive(Default)]
struct InFlight {
    total: usize,
    per_key: HashMap<String, usize>,
}

struct Receiver {
    state: AppState,
    in_flight: Mutex<InFlight>,
}

/// Releases a request's in-flight slot when it is done, however it ends.
struct Slot {
    receiver: Arc<Receiver>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .receiver
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_key.remove(&self.key);
            }
        }
    }
}

/// Seals, every half quiet period, the traces that went quiet after their root span arrived
/// (`store::seal_quiet_traces`); every process runs it, the per-trace lock keeps it single.
pub fn spawn_sealer(state: &AppState) {
    let quiet = state.config.otlp.seal_after;
    if quiet.is_zero() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let every = (quiet / 2).max(std::time::Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store::seal_quiet_traces(&state.db, quiet).await {
                Ok(tenants) => {
                    for tenant in tenants {
                        state.events.publish(Topic::Traces, &tenant).await;
                    }
                }
                Err(err) => tracing::warn!(error = ?err, "OTLP quiet traces not sealed this time"),
            }
        }
    });
}

pub fn routes(cfg: &mut web::ServiceConfig, state: &AppState) {
    let settings = &state.config.otlp;
    let receiver = Arc::new(Receiver {
        state: state.clone(),
        in_flight: Mutex::new(InFlight::default()),
    });
    cfg.service(
        web::resource("/v1/traces")
            .app_data(web::Data::from(receiver))
            // Applies to the decompressed body: a gzip bomb stops at the limit.
            .app_data(web::PayloadConfig::new(settings.max_body_bytes))
            .route(web::post().to(receive)),
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(req: &HttpRequest) -> Option<Encoding> {
        let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn failure(status: StatusCode, encoding: Encoding, message: String) -> HttpResponse {
    // gRPC codes as OTLP/HTTP maps them: 3 invalid argument, 7 permission denied,
    // 8 resource exhausted, 14 unavailable, 16 unauthenticated, 13 internal.
    let code = match status.as_u16() {
        400 | 413 | 415 => 3,
        401 => 16,
        403 => 7,
        429 => 8,
        503 => 14,
        _ => 13,
    };
    let mut response = HttpResponse::build(status);
    response.content_type(encoding.content_type());
    if matches!(status.as_u16(), 429 | 503) {
        response.insert_header((header::RETRY_AFTER, "1"));
    }
    match encoding {
        Encoding::Protobuf => response.body(RpcStatus { code, message }.encode_to_vec()),
        Encoding::Json => response.json(serde_json::json!({ "code": code, "message": message })),
    }
}

fn app_failure(encoding: Encoding, err: &AppError) -> HttpResponse {
    let status = match err {
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        other => other.http_status(),
    };
    failure(status, encoding, err.message())
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    receiver: web::Data<Receiver>,
) -> HttpResponse {
    let Some(encoding) = Encoding::of(&req) else {
        return failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Encoding::Json,
            "Content-Type must be application/x-protobuf or application/json".into(),
        );
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let state = &receiver.state;
    let principal = match auth::authenticate(&state.keys, header, Permission::Ingest).await {
        Ok(principal) => principal,
        Err(err) => return app_failure(encoding, &err),
    };
    if principal.is_platform() {
        return app_failure(
            encoding,
            &AppError::Forbidden {
                role: principal.role.as_str(),
                action: "send spans",
            },
        );
    }
    let _slot = match admit(receiver.clone().into_inner(), &principal.key_id) {
        Ok(slot) => slot,
        Err(status) => {
            let message = if status == StatusCode::TOO_MANY_REQUESTS {
                "too many OTLP requests of this key in flight; retry after the delay"
            } else {
                "the server is busy with OTLP requests; retry after the delay"
            };
            return failure(status, encoding, message.into());
        }
    };
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body.as_ref())
            .map_err(|e| format!("the body is not an OTLP ExportTraceServiceRequest: {e}")),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&body)
            .map_err(|e| format!("the body is not an OTLP ExportTraceServiceRequest: {e}")),
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => return failure(StatusCode::BAD_REQUEST, encoding, message),
    };
    let mapped = mapping::map_request(&request, &state.config.otlp.prices);
    let mut rejected = mapped.rejected;
    let mut reasons = mapped.reasons;
    let mut wrote = Written::default();
    for traces in mapped.traces.chunks(TRACES_PER_TRANSACTION) {
        let results = match store::store_request(&state.db, &principal.tenant_id, traces).await {
            Ok(results) => results,
            Err(err) => {
                // The traces of earlier transactions stay; the exporter's retry finds their
                // spans stored and writes the rest.
                wrote.announce(state, &principal.tenant_id).await;
                return app_failure(encoding, &err);
            }
        };
        for (trace, result) in traces.iter().zip(results) {
            match result {
                Ok(stored) => {
                    rejected += stored.rejected;
                    reasons.extend(stored.reason.clone());
                    wrote.add(&stored);
                }
                Err(err) => {
                    rejected += trace.spans.len() as u64;
                    reasons.push(format!("trace {}: {}", trace.trace_id, err.message()));
                }
            }
        }
    }
    wrote.announce(state, &principal.tenant_id).await;
    let response = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reasons.into_iter().take(5).collect::<Vec<_>>().join("; "),
        }),
    };
    let mut ok = HttpResponse::Ok();
    ok.content_type(encoding.content_type());
    match encoding {
        Encoding::Protobuf => ok.body(response.encode_to_vec()),
        // Protobuf's JSON mapping leaves an unset field out rather than writing null.
        Encoding::Json if response.partial_success.is_none() => ok.json(serde_json::json!({})),
        Encoding::Json => ok.json(&response),
    }
}

/// Most traces one transaction writes. A request's traces share a transaction and its
/// statements (`store`); each holds an advisory lock until the commit, and PostgreSQL's lock
/// table is shared and bounded (`max_locks_per_transaction` per connection), so a request of
/// thousands of small traces is written in several transactions rather than one that runs out
/// of lock slots.
const TRACES_PER_TRANSACTION: usize = 64;

/// A slot for one more request of `key`, or the status that refuses it.
fn admit(receiver: Arc<Receiver>, key: &str) -> Result<Slot, StatusCode> {
    let settings = &receiver.state.config.otlp;
    {
        let mut counts = receiver.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= settings.max_in_flight {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        let of_key = counts.per_key.get(key).copied().unwrap_or(0);
        if of_key >= settings.max_in_flight_per_key {
            return Err(StatusCode::TOO_MANY_REQUESTS);
        }
        counts.total += 1;
        *counts.per_key.entry(key.to_owned()).or_insert(0) += 1;
    }
    Ok(Slot {
        receiver,
        key: key.to_owned(),
    })
}

/// What the request wrote, for the wake-ups of subscribers after the commits.
#[derive(Default)]
struct Written {
    traces: bool,
    steps: bool,
    runs: bool,
    system_records: bool,
}

impl Written {
    fn add(&mut self, stored: &store::Stored) {
        self.traces |= stored.started || stored.sealed;
        self.steps |= stored.steps > 0;
        self.runs |= stored.runs > 0;
        self.system_records |= stored.system_records > 0;
    }

    async fn announce(&self, state: &AppState, tenant: &TenantId) {
        for (wrote, topic) in [
            (self.traces, Topic::Traces),
            (self.steps, Topic::TraceSteps),
            (self.runs, Topic::LlmRuns),
            (self.system_records, Topic::SystemRecords),
        ] {
            if wrote {
                state.events.publish(topic, tenant).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The captured OpenInference payload (OTLP JSON: hex ids, 64-bit integers as strings,
    /// enums as integers) decodes into its two spans with their attributes.
    #[test]
    fn captured_otlp_json_decodes() {
        let text = include_str!("../../tests/it/data/openinference_chat.otlp.json");
        let request: ExportTraceServiceRequest = serde_json::from_str(text).expect("OTLP JSON");
        let mapped = mapping::map_request(&request, &mapping::PriceTable::default());
        assert_eq!(mapped.rejected, 0, "{:?}", mapped.reasons);
        let trace = &mapped.traces[0];
        assert_eq!(trace.trace_id, "dc0410d4fa10720cdd1f131e7b2bcb2a");
        assert_eq!(trace.spans.len(), 2);
        let llm = trace.spans[1]
            .llm
            .as_ref()
            .expect("the ChatCompletion span");
        assert_eq!((llm.input_tokens, llm.output_tokens), (21, 3));
    }
}

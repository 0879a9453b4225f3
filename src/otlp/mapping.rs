//! From OTLP spans to Logbook's records (docs/otlp.md has the table). Pure: no I/O, so every
//! rule is unit-tested here and the store only writes what this returns.
//!
//! - One OTel trace is one Logbook trace; its id is the OTel trace id in lower-case hex.
//! - The root span (no parent) gives the trace its start and, when it is the last to end, seals
//!   it; every other span becomes a step, in start-time order.
//! - A span with a GenAI model attribute (`gen_ai.request.model`, `gen_ai.response.model`,
//!   OpenInference `llm.model_name`) also becomes an LLM run record, with its tokens and the
//!   cost from the configured price table (or the span's own cost attribute).
//! - A span event named `exception` becomes an ERROR system record of the tenant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use serde_json::{Map, Value};

pub use crate::config::otlp::PriceTable;

/// One span, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub span_id: String,
    pub is_root: bool,
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub end_unix_nano: i64,
    pub failed: bool,
    pub status_message: Option<String>,
    /// The span's attributes as a JSON object (resource attributes not included).
    pub attributes: Map<String, Value>,
    pub llm: Option<LlmCall>,
    pub exceptions: Vec<ExceptionEvent>,
}

impl SpanRecord {
    pub fn duration_ms(&self) -> f64 {
        (self.end - self.start)
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as f64
            / 1000.0
    }
}

/// What a GenAI span says about its model call.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub provider: Option<String>,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// From the span's cost attribute, else the price table; `None` when neither knows.
    pub cost_cents: Option<f64>,
}

/// An `exception` span event.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionEvent {
    pub at: DateTime<Utc>,
    pub exception_type: Option<String>,
    pub message: Option<String>,
    pub attributes: Map<String, Value>,
}

/// The spans of one OTel trace in one request, with the resource's `service.name`.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceBatch {
    pub trace_id: String,
    pub service: Option<String>,
    pub spans: Vec<SpanRecord>,
}

/// A request, grouped by trace, and the spans refused with why.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    pub traces: Vec<TraceBatch>,
    pub rejected: u64,
    pub reasons: Vec<String>,
}

/// Groups the request's spans by trace (in first-seen order) and decodes each; a span whose ids
/// or times are invalid is rejected, with a reason, and the others are kept.
pub fn map_request(request: &ExportTraceServiceRequest, prices: &PriceTable) -> Mapped {
    let mut out = Mapped::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_attribute(&r.attributes, "service.name"));
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let (trace_id, record) = match span_record(span, prices) {
                    Ok(decoded) => decoded,
                    Err(reason) => {
                        out.rejected += 1;
                        if out.reasons.len() < 5 {
                            out.reasons.push(reason);
                        }
                        continue;
                    }
                };
                let at = *index.entry(trace_id.clone()).or_insert_with(|| {
                    out.traces.push(TraceBatch {
                        trace_id,
                        service: service.clone(),
                        spans: Vec::new(),
                    });
                    out.traces.len() - 1
                });
                out.traces[at].spans.push(record);
            }
        }
    }
    for trace in &mut out.traces {
        trace.spans.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
    }
    out
}

fn span_record(span: &Span, prices: &PriceTable) -> Result<(String, SpanRecord), String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err("a span's traceId is not 16 bytes, or is all zero".to_owned());
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err("a span's spanId is not 8 bytes, or is all zero".to_owned());
    }
    let span_id = hex::encode(&span.span_id);
    let start = time_of(span.start_time_unix_nano)
        .ok_or_else(|| format!("span {span_id}: startTimeUnixNano is not a time"))?;
    let end = time_of(span.end_time_unix_nano).unwrap_or(start).max(start);
    let attributes = attributes_json(&span.attributes);
    let status = span.status.as_ref();
    let failed = status.is_some_and(|s| s.code == StatusCode::Error as i32);
    let status_message = status.map(|s| s.message.clone()).filter(|m| !m.is_empty());
    let exceptions = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| ExceptionEvent {
            at: time_of(e.time_unix_nano).unwrap_or(start),
            exception_type: string_attribute(&e.attributes, "exception.type"),
            message: string_attribute(&e.attributes, "exception.message"),
            attributes: attributes_json(&e.attributes),
        })
        .collect();
    let record = SpanRecord {
        is_root: span.parent_span_id.is_empty() || span.parent_span_id.iter().all(|b| *b == 0),
        name: if span.name.is_empty() {
            "span".to_owned()
        } else {
            span.name.chars().take(128).collect()
        },
        end_unix_nano: i64::try_from(span.end_time_unix_nano.max(span.start_time_unix_nano))
            .unwrap_or(i64::MAX),
        llm: llm_call(&attributes, prices),
        span_id,
        start,
        end,
        failed,
        status_message,
        attributes,
        exceptions,
    };
    Ok((hex::encode(&span.trace_id), record))
}

/// Unix nanoseconds as a time; 0 and times past 2262 are not times.
fn time_of(nanos: u64) -> Option<DateTime<Utc>> {
    let nanos = i64::try_from(nanos).ok().filter(|n| *n > 0)?;
    Some(DateTime::from_timestamp_nanos(nanos))
}

/// The first of `keys` present as a string (or a number, written as text).
fn first_text(attributes: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match attributes.get(*k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn first_number(attributes: &Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| match attributes.get(*k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The GenAI semantic conventions, with their older names and OpenInference's equivalents.
fn llm_call(attributes: &Map<String, Value>, prices: &PriceTable) -> Option<LlmCall> {
    let model = first_text(
        attributes,
        &[
            "gen_ai.response.model",
            "gen_ai.request.model",
            "llm.model_name",
        ],
    )?;
    let provider = first_text(
        attributes,
        &[
            "gen_ai.provider.name",
            "gen_ai.system",
            "llm.provider",
            "llm.system",
        ],
    )
    .map(|p| p.to_ascii_lowercase());
    let tokens = |keys: &[&str]| first_number(attributes, keys).map_or(0, |t| t.max(0.0) as i64);
    let input_tokens = tokens(&[
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ]);
    let output_tokens = tokens(&[
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ]);
    let own_cost = first_number(attributes, &["gen_ai.usage.cost", "llm.cost.total"])
        .filter(|c| c.is_finite() && *c >= 0.0)
        // Both conventions state cost in US dollars.
        .map(|dollars| dollars * 100.0);
    Some(LlmCall {
        cost_cents: own_cost.or_else(|| prices.cost_cents(&model, input_tokens, output_tokens)),
        provider,
        model: model.chars().take(128).collect(),
        input_tokens,
        output_tokens,
    })
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    })
}

/// Attributes as a JSON object: flat OTel keys (`gen_ai.request.model`) kept as they are.
pub fn attributes_json(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), any_json(kv.value.as_ref())))
        .collect()
}

fn any_json(value: Option<&AnyValue>) -> Value {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return Value::Null;
    };
    match value {
        any_value::Value::StringValue(s) => Value::String(s.clone()),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        any_value::Value::ArrayValue(a) => {
            Value::Array(a.values.iter().map(|v| any_json(Some(v))).collect())
        }
        any_value::Value::KvlistValue(kv) => Value::Object(attributes_json(&kv.values)),
        any_value::Value::BytesValue(b) => Value::String(hex::encode(b)),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Status};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn text(key: &str, v: &str) -> KeyValue {
        kv(key, any_value::Value::StringValue(v.to_owned()))
    }

    fn int(key: &str, v: i64) -> KeyValue {
        kv(key, any_value::Value::IntValue(v))
    }

    fn span(trace: u8, id: u8, parent: Option<u8>, start_ms: u64, attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("s{id}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + start_ms * 1_000_000,
            end_time_unix_nano: 1_700_000_000_000_000_000 + (start_ms + 5) * 1_000_000,
            attributes: attrs,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "agent-a")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn spans_group_by_trace_in_start_order_and_bad_ids_are_rejected() {
        let mut bad = span(3, 9, None, 0, vec![]);
        bad.span_id = vec![0; 8];
        let mapped = map_request(
            &request(vec![
                span(1, 2, Some(1), 30, vec![]),
                span(2, 5, None, 0, vec![]),
                span(1, 1, None, 0, vec![]),
                span(1, 3, Some(1), 10, vec![]),
                bad,
            ]),
            &PriceTable::default(),
        );
        assert_eq!(mapped.rejected, 1);
        assert_eq!(mapped.traces.len(), 2);
        let first = &mapped.traces[0];
        assert_eq!(first.trace_id, "01".repeat(16));
        assert_eq!(first.service.as_deref(), Some("agent-a"));
        let order: Vec<&str> = first.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["s1", "s3", "s2"]);
        assert!(first.spans[0].is_root && !first.spans[1].is_root);
        assert_eq!(first.spans[1].duration_ms(), 5.0);
    }

    #[test]
    fn genai_and_openinference_spans_are_llm_calls() {
        let mut prices = PriceTable::default();
        let (model, p) = PriceTable::parse_entry("gpt-4o=250,1000").expect("entry");
        prices.insert(model, p);
        let genai = span(
            1,
            2,
            Some(1),
            0,
            vec![
                text("gen_ai.system", "OpenAI"),
                text("gen_ai.request.model", "gpt-4o-2024-08-06"),
                int("gen_ai.usage.input_tokens", 1000),
                int("gen_ai.usage.output_tokens", 500),
            ],
        );
        let openinference = span(
            1,
            3,
            Some(1),
            1,
            vec![
                text("llm.provider", "anthropic"),
                text("llm.model_name", "claude-sonnet-4"),
                int("llm.token_count.prompt", 10),
                int("llm.token_count.completion", 20),
                kv("llm.cost.total", any_value::Value::DoubleValue(0.5)),
            ],
        );
        let plain = span(1, 4, Some(1), 2, vec![text("tool.name", "search")]);
        let mapped = map_request(&request(vec![genai, openinference, plain]), &prices);
        let spans = &mapped.traces[0].spans;
        assert_eq!(
            spans[0].llm,
            Some(LlmCall {
                provider: Some("openai".into()),
                model: "gpt-4o-2024-08-06".into(),
                input_tokens: 1000,
                output_tokens: 500,
                cost_cents: Some(0.75),
            })
        );
        let call = spans[1].llm.as_ref().expect("openinference");
        assert_eq!((call.input_tokens, call.output_tokens), (10, 20));
        assert_eq!(call.cost_cents, Some(50.0));
        assert_eq!(spans[2].llm, None);
    }

    #[test]
    fn status_and_exceptions() {
        let mut failing = span(1, 2, Some(1), 0, vec![]);
        failing.status = Some(Status {
            message: "boom".into(),
            code: StatusCode::Error as i32,
        });
        failing.events = vec![span::Event {
            name: "exception".into(),
            time_unix_nano: failing.start_time_unix_nano + 1,
            attributes: vec![
                text("exception.type", "ValueError"),
                text("exception.message", "bad value"),
            ],
            ..Default::default()
        }];
        let mapped = map_request(&request(vec![failing]), &PriceTable::default());
        let s = &mapped.traces[0].spans[0];
        assert!(s.failed);
        assert_eq!(s.status_message.as_deref(), Some("boom"));
        assert_eq!(
            s.exceptions[0].exception_type.as_deref(),
            Some("ValueError")
        );
    }

    #[test]
    fn price_entries_parse_strictly() {
        assert!(PriceTable::parse_entry("gpt-4o=250,1000").is_ok());
        for bad in ["gpt-4o", "=1,2", "m=1", "m=-1,2", "m=a,b", "m=1,inf"] {
            assert!(PriceTable::parse_entry(bad).is_err(), "{bad}");
        }
    }
}

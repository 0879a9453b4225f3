# Captures tests/it/data/openinference_chat.otlp.json (see tests/it/otlp_receiver.rs):
#   python3 -m venv v && v/bin/pip install openinference-instrumentation-openai openai \
#     opentelemetry-sdk opentelemetry-exporter-otlp-proto-common
#   v/bin/python tests/it/data/capture_openinference.py > tests/it/data/openinference_chat.otlp.json
# Captured with openinference-instrumentation-openai 0.1.66, openai 3.63.0, opentelemetry-sdk 1.45.2.
"""Captures the OTLP JSON an OpenInference-instrumented OpenAI chat call produces.

A local HTTP server plays the OpenAI API (one canned chat completion); the OpenAI client,
instrumented by openinference-instrumentation-openai, calls it inside a parent span; the
finished spans are encoded with the OpenTelemetry SDK's own OTLP encoder and written as OTLP
JSON (protobuf's JSON mapping, as OTLP/HTTP JSON exporters send it)."""
import json, threading, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.json_format import MessageToDict
from openai import OpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

COMPLETION = {
    "id": "chatcmpl-capture", "object": "chat.completion", "created": 1764900000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Paris."}}],
    "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
}

class FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), FakeOpenAI)
threading.Thread(target=server.serve_forever, daemon=True).start()

exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "capital-agent"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument(tracer_provider=provider)

client = OpenAI(api_key="sk-capture-not-a-real-key", base_url=f"http://127.0.0.1:{server.server_port}/v1")
tracer = provider.get_tracer("capital-agent")
with tracer.start_as_current_span("answer-question"):
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the capital of France? Reply in one word."}],
    )
provider.force_flush()
request = encode_spans(exporter.get_finished_spans())
doc = MessageToDict(request, use_integers_for_enums=True)
# protobuf's JSON mapping writes bytes as base64; OTLP JSON writes trace and span ids as hex.
import base64
for rs in doc.get("resourceSpans", []):
    for ss in rs.get("scopeSpans", []):
        for span in ss.get("spans", []):
            for field in ("traceId", "spanId", "parentSpanId"):
                if field in span:
                    span[field] = base64.b64decode(span[field]).hex()
json.dump(doc, sys.stdout, indent=1, sort_keys=True)

#!/usr/bin/env python3
"""Spans per second through the OTLP/HTTP receiver (docs/otlp.md), next to g_ingest.

    python3 bench/ingest/otlp_bench.py PORT KEY [CONCURRENCY=8] [SECONDS=10] [SPANS=512] [LLM_EVERY=4]

Each request is one protobuf ExportTraceServiceRequest of SPANS spans: eight traces of
SPANS/8 spans each (children first, the root last so it seals the trace), every LLM_EVERY-th
child a GenAI model call with tokens (0: none). Every request has new trace and span ids, so nothing is a
duplicate. The bodies are encoded here by hand (the few protobuf fields OTLP needs), so the
client needs nothing but Python; they are built before the clock starts. Prints spans/s,
requests/s and latency percentiles; any answer but 200 without refused spans is counted as an
error. With OTLP_BENCH_SERVER_PID set it also prints the CPU time per 1000 spans, of the whole
machine and of the server process: throughput on a shared 2-core machine spreads by a quarter
from run to run, CPU per span much less.
"""
import http.client
import os
import struct
import sys
import threading
import time


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire, payload):
    key = varint((number << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def text(number, s):
    return field(number, 2, s.encode())


def kv_string(key, value, number=9):
    """A KeyValue as field `number`: 9 in a Span, 1 in a Resource."""
    return field(number, 2, text(1, key) + field(2, 2, text(1, value)))


def kv_int(key, value):
    return field(9, 2, text(1, key) + field(2, 2, field(3, 0, varint(value))))


def span(trace_id, span_id, parent, name, start, end, attrs):
    body = field(1, 2, trace_id) + field(2, 2, span_id)
    if parent:
        body += field(4, 2, parent)
    body += text(5, name) + field(6, 0, varint(1))
    body += field(7, 1, struct.pack("<Q", start)) + field(8, 1, struct.pack("<Q", end))
    return body + b"".join(attrs)


def request_body(spans_per_request, llm_every):
    per_trace = max(2, spans_per_request // 8)
    now = time.time_ns()
    spans = []
    for _ in range(spans_per_request // per_trace):
        trace_id = os.urandom(16)
        root = os.urandom(8)
        for i in range(per_trace - 1):
            attrs = [kv_string("tool.name", f"tool-{i % 7}")]
            if llm_every and i % llm_every == 0:
                attrs = [
                    kv_string("gen_ai.system", "openai"),
                    kv_string("gen_ai.request.model", "gpt-4o-mini"),
                    kv_int("gen_ai.usage.input_tokens", 200 + i),
                    kv_int("gen_ai.usage.output_tokens", 40 + i),
                ]
            start = now + i * 1_000_000
            spans.append(
                span(trace_id, os.urandom(8), root, f"step-{i}", start, start + 900_000, attrs)
            )
        spans.append(span(trace_id, root, None, "agent-run", now, now + per_trace * 1_000_000, []))
    scope_spans = field(2, 2, b"".join(field(2, 2, s) for s in spans))
    resource = field(1, 2, kv_string("service.name", "bench-agent", number=1))
    return field(1, 2, resource + scope_spans), len(spans)


def main():
    port = int(sys.argv[1])
    key = sys.argv[2]
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    per_request = int(sys.argv[5]) if len(sys.argv) > 5 else 512
    llm_every = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    # Enough distinct bodies for the run at a generous rate; each is sent once.
    # (100 requests/s of 512 spans is 51 200 spans/s, well past the target.)
    bodies = [request_body(per_request, llm_every) for _ in range(int(seconds * 100) + 50)]
    lock = threading.Lock()
    next_body = [0]
    latencies, errors, spans_done = [], [0], [0]
    headers = {
        "content-type": "application/x-protobuf",
        "authorization": f"Bearer {key}",
    }
    deadline = time.monotonic() + seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if next_body[0] >= len(bodies):
                    return
                body, count = bodies[next_body[0]]
                next_body[0] += 1
            began = time.monotonic()
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            took = time.monotonic() - began
            with lock:
                latencies.append(took)
                # An answer with refused spans carries a partialSuccess (field 1).
                if response.status != 200 or answer:
                    errors[0] += 1
                else:
                    spans_done[0] += count

    # For a profiler to start when the load does (the bodies take seconds to build).
    if os.environ.get("OTLP_BENCH_READY"):
        open(os.environ["OTLP_BENCH_READY"], "w").close()
    server_pid = os.environ.get("OTLP_BENCH_SERVER_PID")
    cpu_before = cpu_seconds(server_pid)
    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    cpu_after = cpu_seconds(server_pid)
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    print(
        f"concurrency {concurrency}, {per_request} spans/request, LLM every {llm_every}: "
        f"{spans_done[0] / elapsed:,.0f} spans/s, {len(latencies) / elapsed:,.1f} requests/s, "
        f"p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, errors {errors[0]}"
        + cpu_per_spans(cpu_before, cpu_after, spans_done[0])
    )


def cpu_seconds(server_pid):
    """CPU seconds spent so far: the whole machine (busy, from /proc/stat) and the server
    process (None without its pid). Linux only; (None, None) elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        machine = (sum(fields[:8]) - fields[3] - fields[4]) / tick
        server = None
        if server_pid:
            with open(f"/proc/{server_pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            server = (int(stat[11]) + int(stat[12])) / tick
        return machine, server
    except OSError:
        return None, None


def cpu_per_spans(before, after, spans):
    """`; CPU per 1000 spans: machine M ms, server S ms` (CPU time over the measured run, so a
    figure that spread in throughput does not move), or nothing when unknown."""
    if before[0] is None or after[0] is None or not spans:
        return ""
    text = f"; CPU per 1000 spans: machine {(after[0] - before[0]) * 1e6 / spans:.1f} ms"
    if before[1] is not None and after[1] is not None:
        text += f", server {(after[1] - before[1]) * 1e6 / spans:.1f} ms"
    return text


if __name__ == "__main__":
    main()

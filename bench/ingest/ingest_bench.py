# g_ingest load generator (fallback for examples/g_ingest.rs): asyncio keep-alive HTTP/1.1,
# recordSteps batches of 100, a unique idempotency key per call.
import asyncio, json, sys, time
HOST, PORT = "127.0.0.1", int(sys.argv[1]); KEY = open("/tmp/ingest_bench_key").read().strip()
CONC, SECS, BATCH = int(sys.argv[2]), float(sys.argv[3]), 100
START = "mutation($input: StartTraceInput!) { startTrace(input: $input) { traceId } }"
RECORD = "mutation($t: String!, $s: [TraceStepInput!]!, $k: String) { recordSteps(traceId: $t, steps: $s, idempotencyKey: $k) { insertedCount } }"
def batch(first):
    return [{"stepIndex": i, "skillName": "llm_invoke" if i % 3 == 0 else "http_call",
             "params": {"model": "claude-sonnet-4-5", "temperature": 0.2, "max_tokens": 1024, "prompt_template": "triage.v3", "attempt": i},
             "status": "retry" if i % 17 == 0 else "success", "outcomeCategory": "SUCCESS",
             "outcomeData": {"tokens": 512, "summary": "ok"}, "costCents": 0.42, "durationMs": 118.5}
            for i in range(first, first + BATCH)]
async def post(r, w, query, variables):
    body = json.dumps({"query": query, "variables": variables}).encode()
    w.write(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n"); n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"): n = int(line.split(b":")[1])
    data = json.loads(await r.readexactly(n))
    if "errors" in data: raise SystemExit(f"error: {data}")
    return data["data"]
async def worker(wid, run, until, stats):
    r, w = await asyncio.open_connection(HOST, PORT); t = 0
    while time.monotonic() < until:
        rid = f"{run}-w{wid}-t{t}"; t += 1
        tid = (await post(r, w, START, {"input": {"runId": rid}}))["startTrace"]["traceId"]
        for b in range(100):
            if time.monotonic() >= until: break
            s = time.monotonic()
            d = await post(r, w, RECORD, {"t": tid, "s": batch(b * BATCH), "k": f"{rid}-b{b}"})
            stats.append((time.monotonic() - s, d["recordSteps"]["insertedCount"]))
async def main():
    stats = []; run = f"py{int(time.time())}"; t0 = time.monotonic()
    await asyncio.gather(*(worker(i, run, t0 + SECS, stats) for i in range(CONC)))
    el = time.monotonic() - t0; lat = sorted(x[0] for x in stats); steps = sum(x[1] for x in stats)
    print(f"g_ingest: c={CONC} batch={BATCH} {len(stats)} requests {steps} steps in {el:.1f}s -> {steps/el:.0f} steps/s, {len(stats)/el:.0f} req/s, p50 {lat[len(lat)//2]*1000:.1f} ms p99 {lat[int(len(lat)*0.99)]*1000:.1f} ms")
asyncio.run(main())

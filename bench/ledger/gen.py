# Generates N chained audit entries for tenant `bench` as COPY text on stdout (hash v1 of docs/ledger.md).
import hashlib, json, sys, datetime
n = int(sys.argv[1]); tenant = sys.argv[2] if len(sys.argv) > 2 else "bench"
base = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
prev = "0" * 64
out = sys.stdout
buf = []
for seq in range(1, n + 1):
    eid = f"{tenant}-{seq:07d}"
    at = (base + datetime.timedelta(milliseconds=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    after = {"n": seq, "limit": f"limit-{seq % 50}"}
    arr = [tenant, seq, prev, eid, "LimitBreached", "LIMIT", f"limit-{seq % 50}", "SYSTEM", None, None, None, after, None, None, at]
    text = json.dumps(arr, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    h = hashlib.sha256(b"logbook-audit-v1\x00" + text.encode()).hexdigest()
    aj = json.dumps(after, separators=(",", ":"), sort_keys=True)
    buf.append(f"{eid}\t{tenant}\t{seq}\tLimitBreached\tLIMIT\tlimit-{seq % 50}\tSYSTEM\t\\N\t\\N\t\\N\t{aj}\t\\N\t\\N\t{prev}\t{h}\t1\t{at}\n")
    prev = h
    if len(buf) >= 10000:
        out.write("".join(buf)); buf = []
out.write("".join(buf))
print(f"{n}\t{prev}", file=sys.stderr)

# i_proof: inclusion proof for a random audit entry of tenant `bench`, fixed duration, N client threads.
import http.client, json, random, sys, threading, time
port, key, dur, conc, n = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
Q = 'query($id: ID!) { ledger { inclusionProof(entryId: $id) { leafIndex treeSize auditPath rootHash } } }'
lat, errs = [], [0]
def path_len(m, n):  # RFC 6962 PATH(m, D[n]) length
    k = 0
    while n > 1:
        s = 1 << ((n - 1).bit_length() - 1)
        if m < s: n = s
        else: m, n = m - s, n - s
        k += 1
    return k
def worker(seed):
    rnd = random.Random(seed)
    c = http.client.HTTPConnection("127.0.0.1", port)
    end = time.time() + dur
    while time.time() < end:
        seq = rnd.randint(1, n)
        body = json.dumps({"query": Q, "variables": {"id": f"bench-{seq:07d}"}})
        t = time.perf_counter()
        c.request("POST", "/graphql", body, {"Content-Type": "application/json", "Authorization": "Bearer " + key})
        r = json.loads(c.getresponse().read())
        lat.append(time.perf_counter() - t)
        if "errors" in r or len(r["data"]["ledger"]["inclusionProof"]["auditPath"]) != path_len(seq - 1, n):
            errs[0] += 1
ts = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"c={conc} requests={len(lat)} rps={len(lat)/dur:.0f} p50={q(0.5):.2f}ms p90={q(0.9):.2f}ms p99={q(0.99):.2f}ms max={lat[-1]*1000:.2f}ms errors={errs[0]}")

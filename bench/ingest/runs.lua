-- wrk: recordLlmRun with a run id unique per thread and request (the write path the run
-- rollups' triggers sit on). AUTH holds "Bearer <INGEST key>"; RUN_PREFIX keeps runs apart.
local counter = 0
local thread_id = 0
local prefix = os.getenv("RUN_PREFIX") or "bench"

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"query":"mutation($i: RecordLlmRunInput!) { recordLlmRun(input: $i) { recordId } }",' ..
    '"variables":{"i":{"runId":"%s-%d-%d","provider":"openai","model":"gpt-4o",' ..
    '"executionStatus":"SUCCEEDED","startedAt":"2026-11-20T10:00:00Z","source":"WORKER",' ..
    '"inputTokens":%d,"outputTokens":%d,"costCents":%d}}}',
    prefix, tid, counter, 100 + counter % 900, 50 + counter % 300, counter % 40)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = os.getenv("AUTH"),
  }, body)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"') then
    io.stderr:write(body .. "\n")
  end
end

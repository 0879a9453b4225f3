// Runs the graphql-http server audits (GraphQL-over-HTTP conformance) against a running Logbook.
//
//   LOGBOOK_API_KEY=lb_… node audit.mjs [http://127.0.0.1:8080/graphql]
//
// The URL may also come from LOGBOOK_URL. Every request carries `Authorization: Bearer <key>`:
// Logbook authenticates before it parses, so an unauthenticated audit would only ever see
// UNAUTHENTICATED. Prints one line per audit (id, level, result, name; the reason and the
// response on failure), then the counts per level. Exit status 1 when a MUST or SHOULD audit
// fails, 2 on a usage or fatal error. The Rust port of the MUST and SHOULD audits is
// tests/it/graphql_http.rs.

import { auditServer } from 'graphql-http';

const url = process.argv[2] ?? process.env.LOGBOOK_URL ?? 'http://127.0.0.1:8080/graphql';
const key = process.env.LOGBOOK_API_KEY;
if (!key) {
  console.error('set LOGBOOK_API_KEY to an API key of the server under audit');
  process.exit(2);
}

/** `fetch` with the API key added to whatever headers the audit sets. */
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers ?? {});
  headers.set('authorization', `Bearer ${key}`);
  return fetch(input, { ...init, headers });
}

const LEVELS = ['MUST', 'SHOULD', 'MAY'];

async function describe(response) {
  if (!response) return '';
  let body = '';
  try {
    body = await response.clone().text();
  } catch {
    body = '<body already read>';
  }
  if (body.length > 300) body = `${body.slice(0, 300)}…`;
  return `status ${response.status}, content-type ${response.headers.get('content-type')}, body ${body}`;
}

let results;
try {
  results = await auditServer({ url, fetchFn });
} catch (err) {
  console.error(`audit aborted: ${err?.stack ?? err}`);
  process.exit(2);
}

const counts = Object.fromEntries(LEVELS.map((level) => [level, { passed: 0, total: 0 }]));
for (const result of results) {
  const level = LEVELS.find((l) => result.name.startsWith(`${l} `)) ?? 'MAY';
  const ok = result.status === 'ok';
  counts[level].total += 1;
  if (ok) counts[level].passed += 1;
  const name = result.name.slice(level.length + 1);
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${result.id}  ${level.padEnd(6)}  ${name}`);
  if (!ok) {
    console.log(`        reason: ${result.reason}`);
    console.log(`        response: ${await describe(result.response)}`);
  }
}

const passed = LEVELS.reduce((n, l) => n + counts[l].passed, 0);
console.log(
  `\n${passed}/${results.length} passed: ` +
    LEVELS.map((l) => `${l} ${counts[l].passed}/${counts[l].total}`).join(', '),
);
const required = ['MUST', 'SHOULD'].some((l) => counts[l].passed < counts[l].total);
process.exit(required ? 1 : 0);

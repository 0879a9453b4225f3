// Composes subgraphs into a supergraph with Apollo's own composition library, as `rover
// supergraph compose` and the router's managed federation do (tests/it/federation.rs).
//
// stdin: [{ "name": "...", "url": "...", "sdl": "..." }, ...]
// stdout: { "errors": [...], "hints": [...], "supergraphSdl": "..." | null }
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const subgraphs = JSON.parse(input).map(({ name, url, sdl }) => ({
  name,
  url,
  typeDefs: parse(sdl),
}));
const result = composeServices(subgraphs);
process.stdout.write(
  JSON.stringify({
    errors: (result.errors ?? []).map((e) => e.message),
    hints: (result.hints ?? []).map((h) => h.message ?? String(h)),
    supergraphSdl: result.supergraphSdl ?? null,
  }),
);

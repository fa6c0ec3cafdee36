#!/usr/bin/env node
// The TypeScript SDK client against `mcp-cloudops serve --sandbox --dynamic-toolsets`.
//
//   node ts-dynamic-toolsets.mjs EXPECT http http://127.0.0.1:PORT/mcp
//   node ts-dynamic-toolsets.mjs EXPECT stdio COMMAND [ARG...]   (spawned with the SDK's default environment, in the cwd)
//
// EXPECT is JSON that tests/test_interop_dynamic.py makes from tools.yaml, so that nothing here names a provider:
//   {"toolsets": {NAME: [TOOL, ...], ...},   every toolset the server should list, with its tools
//    "enable": NAME, "calls": [[TOOL, ARGS], ...],   the toolset the first session enables, and calls to make in it
//    "header": NAME}                          the toolset a third session (HTTP) asks for with X-MCP-Toolsets
//
// The server starts with two discovery tools (list-toolsets, enable-toolset) and declares tools.listChanged.
// The client has the SDK refetch the tool list on notifications/tools/list_changed (the Client's
// `listChanged.tools` option, autoRefresh), enables `enable`, waits for the notification and the refetched
// list, and makes `calls` from it. Over HTTP also: a second session, open at the same time, still has only
// the discovery tools; a third, opened with `X-MCP-Toolsets: <header>`, has that toolset's tools at once.
// Prints one JSON summary line on success; exits 1 with the reason on failure.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [expectJson, mode, target, ...rest] = process.argv.slice(2);
if (!["http", "stdio"].includes(mode) || !target) {
  console.error("usage: ts-dynamic-toolsets.mjs EXPECT (http URL | stdio COMMAND [ARG...])");
  process.exit(2);
}
const expected = JSON.parse(expectJson);
const TOOLSETS = Object.keys(expected.toolsets).sort();
const ENABLE = expected.enable;
const HEADER = expected.header;
for (const name of [ENABLE, HEADER]) {
  if (!TOOLSETS.includes(name)) {
    console.error(`EXPECT names toolset ${name}, which is not among its toolsets ${TOOLSETS}`);
    process.exit(2);
  }
}

const DISCOVERY = ["enable-toolset", "list-toolsets"];
const timeout = { timeout: 30_000 };
const NOTIFICATION_WAIT_MS = 10_000;
const clients = [];

// A client whose tool list the SDK refetches on each notifications/tools/list_changed; `seen` records what
// came of each refetch (the lists, or the errors), and wakes whoever waits in `until`.
async function connect(label, headers) {
  const seen = { refetches: 0, lists: [], errors: [], wake: [] };
  const client = new Client(
    { name: `mcp-cloudops-interop-${label}`, version: "0.0.0" },
    {
      listChanged: {
        tools: {
          autoRefresh: true,
          onChanged: (error, tools) => {
            seen.refetches += 1;
            if (error) seen.errors.push(error);
            else seen.lists.push(tools);
            for (const wake of seen.wake.splice(0)) wake();
          },
        },
      },
    },
  );
  const transport =
    mode === "http"
      ? new StreamableHTTPClientTransport(new URL(target), headers ? { requestInit: { headers } } : undefined)
      : new StdioClientTransport({ command: target, args: rest, stderr: "inherit" });
  clients.push(client);
  await client.connect(transport, timeout);
  return { client, seen, label };
}

// Resolve once `ready()` holds (checked on each refetch), or fail after `ms` naming `what`.
async function until(seen, ready, ms, what) {
  const deadline = Date.now() + ms;
  while (!ready()) {
    const left = deadline - Date.now();
    if (left <= 0) {
      const errors = seen.errors.map((e) => e?.message ?? String(e));
      throw new Error(`timed out after ${ms} ms waiting for ${what} (refetches: ${seen.refetches}, errors: ${JSON.stringify(errors)})`);
    }
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      seen.wake.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

const names = (tools) => tools.map((t) => t.name).sort();

async function call(client, name, args = {}) {
  return client.callTool({ name, arguments: args }, undefined, timeout);
}

async function ok(client, name, args = {}) {
  const result = await call(client, name, args);
  assert.notEqual(result.isError, true, `${name} ${JSON.stringify(args)} failed: ${JSON.stringify(result.content)}`);
  assert.ok(result.structuredContent && typeof result.structuredContent === "object", `${name}: structuredContent`);
  return result.structuredContent;
}

async function toolsets(client) {
  const listed = await ok(client, "list-toolsets");
  assert.ok(Array.isArray(listed.toolsets), `list-toolsets: toolsets is an array: ${JSON.stringify(listed)}`);
  const byName = Object.fromEntries(listed.toolsets.map((t) => [t.name, t]));
  assert.deepEqual(Object.keys(byName).sort(), TOOLSETS, "list-toolsets names every provider of tools.yaml");
  for (const t of listed.toolsets) {
    assert.equal(typeof t.title, "string", `${t.name}: title`);
    assert.equal(typeof t.description, "string", `${t.name}: description`);
    assert.equal(t.tools, expected.toolsets[t.name].length, `${t.name}: tools counts its tools in tools.yaml`);
    assert.equal(typeof t.enabled, "boolean", `${t.name}: enabled`);
    assert.equal(typeof t.configured, "boolean", `${t.name}: configured`);
  }
  return byName;
}

async function onlyDiscovery({ client, label }) {
  const { tools } = await client.listTools(undefined, timeout);
  assert.deepEqual(names(tools), DISCOVERY, `${label}: tools/list holds only the discovery tools`);
  return tools;
}

try {
  // ---- the first client: discover, enable a toolset, follow list_changed, call its tools ----
  const first = await connect("first");
  const { client } = first;
  const server = client.getServerVersion();
  assert.equal(server?.name, "mcp-cloudops");
  assert.equal(client.getServerCapabilities()?.tools?.listChanged, true, "server declares tools.listChanged: true");

  // Over HTTP the second session is open before the first one enables anything.
  const second = mode === "http" ? await connect("second") : undefined;

  const initial = await onlyDiscovery(first);
  const enable = initial.find((t) => t.name === "enable-toolset");
  assert.ok(enable.inputSchema?.properties?.toolset, "enable-toolset takes a `toolset` argument");

  const before = await toolsets(client);
  for (const t of Object.values(before)) assert.equal(t.enabled, false, `${t.name} starts disabled`);
  assert.equal(before[ENABLE].configured, true, `the sandbox configures ${ENABLE}`);

  const unknown = await call(client, "enable-toolset", { toolset: "no-such-toolset" });
  assert.equal(unknown.isError, true, `an unknown toolset is a tool error: ${JSON.stringify(unknown)}`);
  assert.match(unknown.content?.[0]?.text ?? "", /list-toolsets/, "the error names list-toolsets");

  const refetchesBefore = first.seen.refetches;
  const enabled = await ok(client, "enable-toolset", { toolset: ENABLE });
  assert.equal(enabled.toolset, ENABLE, `enable-toolset result: ${JSON.stringify(enabled)}`);
  assert.equal(enabled.enabled, true, `enable-toolset result: ${JSON.stringify(enabled)}`);
  assert.ok(Array.isArray(enabled.tools), `enable-toolset result lists the tools added: ${JSON.stringify(enabled)}`);

  const own = [...expected.toolsets[ENABLE]].sort();
  const hasThem = (tools) => own.every((name) => tools.some((t) => t.name === name));
  await until(
    first.seen,
    () => first.seen.lists.slice(refetchesBefore).some(hasThem),
    NOTIFICATION_WAIT_MS,
    `notifications/tools/list_changed and a refetched list holding ${ENABLE}'s tools`,
  );
  const refetched = first.seen.lists.at(-1);
  const added = names(refetched).filter((n) => !DISCOVERY.includes(n));
  assert.deepEqual(names(refetched), [...DISCOVERY, ...added].sort(), "the discovery tools stay listed");
  assert.deepEqual(added, [...enabled.tools].sort(), "the refetched list adds exactly the tools enable-toolset named");
  assert.deepEqual(added, own, `exactly ${ENABLE}'s tools were added`);
  const { tools: relisted } = await client.listTools(undefined, timeout);
  assert.deepEqual(names(relisted), names(refetched), "a fresh tools/list agrees with the refetched one");

  const again = await ok(client, "enable-toolset", { toolset: ENABLE });
  assert.equal(again.enabled, true, `enabling twice is fine: ${JSON.stringify(again)}`);
  const { tools: afterAgain } = await client.listTools(undefined, timeout);
  assert.deepEqual(names(afterAgain), names(refetched), "enabling twice changes nothing");
  assert.equal((await toolsets(client))[ENABLE].enabled, true, `list-toolsets shows ${ENABLE} enabled`);

  // What each call gave, in brief, for the Python test to judge: its id, and how many items it listed.
  const calls = [];
  for (const [name, args] of expected.calls) {
    assert.ok(added.includes(name), `${name} is a tool of ${ENABLE}, from the refetched list`);
    const result = await ok(client, name, args);
    calls.push({ tool: name, id: result.id ?? null, items: Array.isArray(result.items) ? result.items.length : null });
  }

  const summary = {
    ok: true,
    mode,
    server,
    initial: names(initial),
    added,
    refetches: first.seen.refetches,
    calls,
    unknownToolset: unknown.content[0].text,
  };

  if (mode === "http") {
    // ---- the second session, open all along: untouched by the first one's enable ----
    await onlyDiscovery(second);
    assert.equal((await toolsets(second.client))[ENABLE].enabled, false, `second: ${ENABLE} still disabled`);
    summary.second = { tools: DISCOVERY.length, refetches: second.seen.refetches };

    // ---- a third session choosing its toolsets with X-MCP-Toolsets ----
    const third = await connect("third", { "X-MCP-Toolsets": HEADER });
    const { tools: chosen } = await third.client.listTools(undefined, timeout);
    const sets = await toolsets(third.client);
    assert.equal(sets[HEADER].enabled, true, `third: ${HEADER} starts enabled`);
    for (const name of TOOLSETS.filter((t) => t !== HEADER)) {
      assert.equal(sets[name].enabled, false, `third: ${name} is not enabled`);
    }
    const its = names(chosen).filter((n) => !DISCOVERY.includes(n));
    for (const name of DISCOVERY) assert.ok(names(chosen).includes(name), `third: ${name} is listed`);
    assert.deepEqual(its, [...expected.toolsets[HEADER]].sort(), `third: exactly ${HEADER}'s tools besides discovery`);
    summary.third = { toolset: HEADER, tools: its.length };
  }

  console.log(JSON.stringify(summary));
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  process.exit(0);
} catch (err) {
  console.error(`ts-dynamic-toolsets (${mode}) FAILED: ${err?.stack ?? err}`);
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  process.exit(1);
}

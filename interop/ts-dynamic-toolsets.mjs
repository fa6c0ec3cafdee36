#!/usr/bin/env node
// The TypeScript SDK client against `mcp-cloudops serve --sandbox --dynamic-toolsets`.
//
//   node ts-dynamic-toolsets.mjs http http://127.0.0.1:PORT/mcp
//   node ts-dynamic-toolsets.mjs stdio COMMAND [ARG...]   (spawned with the SDK's default environment, in the cwd)
//
// The server starts with two discovery tools (list-toolsets, enable-toolset) and declares tools.listChanged.
// The client has the SDK refetch the tool list on notifications/tools/list_changed (the Client's
// `listChanged.tools` option, autoRefresh), enables the nirvana toolset, waits for the notification and the
// refetched list, and calls nirvana tools from it. Over HTTP also: a second session, open at the same time,
// still has only the discovery tools; a third, opened with `X-MCP-Toolsets: scaleway`, has scaleway's tools
// at once. Prints one JSON summary line on success; exits 1 with the reason on failure.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, ...rest] = process.argv.slice(2);
if (!["http", "stdio"].includes(mode) || !target) {
  console.error("usage: ts-dynamic-toolsets.mjs http URL | stdio COMMAND [ARG...]");
  process.exit(2);
}

const DISCOVERY = ["enable-toolset", "list-toolsets"];
const PROVIDERS = ["exoscale", "incus", "nirvana", "portainer", "scaleway"];
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
  assert.deepEqual(Object.keys(byName).sort(), PROVIDERS, "list-toolsets names every provider");
  for (const t of listed.toolsets) {
    assert.equal(typeof t.title, "string", `${t.name}: title`);
    assert.equal(typeof t.description, "string", `${t.name}: description`);
    assert.ok(Number.isInteger(t.tools) && t.tools > 0, `${t.name}: tools is a positive count: ${t.tools}`);
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
  // ---- the first client: discover, enable nirvana, follow list_changed, call nirvana tools ----
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
  assert.equal(before.nirvana.configured, true, "the sandbox configures nirvana");

  const unknown = await call(client, "enable-toolset", { toolset: "no-such-toolset" });
  assert.equal(unknown.isError, true, `an unknown toolset is a tool error: ${JSON.stringify(unknown)}`);
  assert.match(unknown.content?.[0]?.text ?? "", /list-toolsets/, "the error names list-toolsets");

  const refetchesBefore = first.seen.refetches;
  const enabled = await ok(client, "enable-toolset", { toolset: "nirvana" });
  assert.equal(enabled.toolset, "nirvana", `enable-toolset result: ${JSON.stringify(enabled)}`);
  assert.equal(enabled.enabled, true, `enable-toolset result: ${JSON.stringify(enabled)}`);
  assert.ok(Array.isArray(enabled.tools), `enable-toolset result lists the tools added: ${JSON.stringify(enabled)}`);

  const hasNirvana = (tools) => tools.some((t) => t.name === "list-nirvana-operations");
  await until(
    first.seen,
    () => first.seen.lists.slice(refetchesBefore).some(hasNirvana),
    NOTIFICATION_WAIT_MS,
    "notifications/tools/list_changed and a refetched list holding list-nirvana-operations",
  );
  const refetched = first.seen.lists.at(-1);
  const added = names(refetched).filter((n) => !DISCOVERY.includes(n));
  assert.deepEqual(names(refetched), [...DISCOVERY, ...added].sort(), "the discovery tools stay listed");
  assert.deepEqual(added, [...enabled.tools].sort(), "the refetched list adds exactly the tools enable-toolset named");
  assert.equal(added.length, before.nirvana.tools, "list-toolsets counted nirvana's tools");
  assert.ok(added.every((n) => n.includes("nirvana")), `only nirvana tools were added: ${added}`);
  const { tools: relisted } = await client.listTools(undefined, timeout);
  assert.deepEqual(names(relisted), names(refetched), "a fresh tools/list agrees with the refetched one");

  const again = await ok(client, "enable-toolset", { toolset: "nirvana" });
  assert.equal(again.enabled, true, `enabling twice is fine: ${JSON.stringify(again)}`);
  const { tools: afterAgain } = await client.listTools(undefined, timeout);
  assert.deepEqual(names(afterAgain), names(refetched), "enabling twice changes nothing");
  assert.equal((await toolsets(client)).nirvana.enabled, true, "list-toolsets shows nirvana enabled");

  const projects = await ok(client, "list-nirvana-projects");
  // A project with cloud resources has operations (the newest projects, listed first, have none).
  const busy = (projects.items ?? []).find((p) => Object.values(p.resources?.cloud ?? {}).some((n) => n > 0));
  const projectId = busy?.id;
  assert.ok(projectId, `list-nirvana-projects gave a project with resources: ${JSON.stringify(projects).slice(0, 500)}`);
  const operations = await ok(client, "list-nirvana-operations", { project_id: projectId });
  assert.ok(
    Array.isArray(operations.items) && operations.items.length > 0,
    `list-nirvana-operations lists operations: ${JSON.stringify(operations).slice(0, 500)}`,
  );
  const operation = await ok(client, "get-nirvana-operation", { operation_id: operations.items[0].id });
  assert.equal(operation.id, operations.items[0].id, "get-nirvana-operation returns the operation asked for");

  const summary = {
    ok: true,
    mode,
    server,
    initial: names(initial),
    added,
    refetches: first.seen.refetches,
    operations: operations.items.length,
    unknownToolset: unknown.content[0].text,
  };

  if (mode === "http") {
    // ---- the second session, open all along: untouched by the first one's enable ----
    await onlyDiscovery(second);
    assert.equal((await toolsets(second.client)).nirvana.enabled, false, "second: nirvana still disabled");
    summary.second = { tools: DISCOVERY.length, refetches: second.seen.refetches };

    // ---- a third session choosing its toolsets with X-MCP-Toolsets ----
    const third = await connect("third", { "X-MCP-Toolsets": "scaleway" });
    const { tools: chosen } = await third.client.listTools(undefined, timeout);
    const sets = await toolsets(third.client);
    assert.equal(sets.scaleway.enabled, true, "third: scaleway starts enabled");
    for (const name of PROVIDERS.filter((p) => p !== "scaleway")) {
      assert.equal(sets[name].enabled, false, `third: ${name} is not enabled`);
    }
    const scaleway = names(chosen).filter((n) => !DISCOVERY.includes(n));
    for (const name of DISCOVERY) assert.ok(names(chosen).includes(name), `third: ${name} is listed`);
    assert.ok(scaleway.includes("list-scaleway-snapshots"), `third: scaleway's tools are listed: ${scaleway}`);
    assert.equal(scaleway.length, sets.scaleway.tools, "third: exactly scaleway's tools besides the discovery ones");
    assert.ok(!scaleway.some((n) => n.includes("nirvana")), "third: no nirvana tools");
    summary.third = { scaleway: scaleway.length };
  }

  console.log(JSON.stringify(summary));
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  process.exit(0);
} catch (err) {
  console.error(`ts-dynamic-toolsets (${mode}) FAILED: ${err?.stack ?? err}`);
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  process.exit(1);
}

#!/usr/bin/env node
// The TypeScript SDK client (what Claude Desktop embeds) against mcp-cloudops.
//
//   node ts-client.mjs http http://127.0.0.1:PORT/mcp
//   node ts-client.mjs stdio COMMAND [ARG...]     (spawned with the SDK's default environment, in the cwd)
//
// Lists the tools, calls two read-only tools and one with a bad argument, and asserts on each answer.
// Prints one JSON summary line on success; exits 1 with the reason on failure.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, ...rest] = process.argv.slice(2);
if (!["http", "stdio"].includes(mode) || !target) {
  console.error("usage: ts-client.mjs http URL | stdio COMMAND [ARG...]");
  process.exit(2);
}

const transport =
  mode === "http"
    ? new StreamableHTTPClientTransport(new URL(target))
    : new StdioClientTransport({ command: target, args: rest, stderr: "inherit" });
const client = new Client({ name: "mcp-cloudops-interop", version: "0.0.0" });
const timeout = { timeout: 30_000 };

try {
  await client.connect(transport, timeout);
  const server = client.getServerVersion();
  assert.equal(server?.name, "mcp-cloudops");
  assert.ok(client.getServerCapabilities()?.tools, "server declares the tools capability");
  await client.ping(timeout);

  const { tools } = await client.listTools(undefined, timeout);
  assert.ok(tools.length >= 40, `expected >= 40 tools, got ${tools.length}`);
  for (const tool of tools) {
    assert.equal(tool.inputSchema?.type, "object", `${tool.name}: inputSchema.type`);
    assert.ok(tool.title, `${tool.name}: title`);
    assert.ok(tool.description, `${tool.name}: description`);
    assert.ok(tool.annotations, `${tool.name}: annotations`);
    assert.equal(typeof tool.annotations.readOnlyHint, "boolean", `${tool.name}: readOnlyHint`);
  }
  const names = new Set(tools.map((t) => t.name));
  for (const name of ["list-compute-instances", "get-operations", "stop-compute-instance"]) {
    assert.ok(names.has(name), `tool ${name} is listed`);
  }

  const listed = await client.callTool({ name: "list-compute-instances", arguments: {} }, undefined, timeout);
  assert.notEqual(listed.isError, true, `list-compute-instances failed: ${JSON.stringify(listed.content)}`);
  assert.ok(Array.isArray(listed.structuredContent?.instances), "structuredContent.instances is an array");

  const operations = await client.callTool({ name: "get-operations", arguments: {} }, undefined, timeout);
  assert.notEqual(operations.isError, true, `get-operations failed: ${JSON.stringify(operations.content)}`);

  const bad = await client.callTool({ name: "stop-compute-instance", arguments: { id: "../x" } }, undefined, timeout);
  assert.equal(bad.isError, true, "a bad argument is a tool error");
  assert.match(bad.content?.[0]?.text ?? "", /id/, "the error names the argument");

  console.log(
    JSON.stringify({
      ok: true,
      mode,
      server,
      tools: tools.length,
      instances: listed.structuredContent.instances.length,
      badArgument: bad.content[0].text,
    }),
  );
  await client.close();
  process.exit(0);
} catch (err) {
  console.error(`ts-client (${mode}) FAILED: ${err?.stack ?? err}`);
  await client.close().catch(() => {});
  process.exit(1);
}

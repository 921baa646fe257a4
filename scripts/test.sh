#!/usr/bin/env bash
# The whole test suite: formatting, vet, the tests with the SIMD (cgo) kernels,
# and the kernels again with CGO_ENABLED=0 (the plain-Go paths every build
# without a C compiler uses).
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

.DEFAULT_GOAL := help
.PHONY: help run test fuzz openapi chutes-client webhook-faults lint fmt db db-stop bench

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## run the server against the dev database (provisioned if needed)
	url=$$(scripts/dev-postgres url tessera) && TESSERA__DATABASE__URL="$$url" cargo run --release -p tessera-server --bin tessera -- serve

test: ## run all tests, then side by side: a short fuzz of the API, the OpenAPI consumer checks, the published Chutes client, webhooks under faults (needs PostgreSQL; see scripts/dev-postgres)
	url=$$(scripts/dev-postgres url postgres) && TESSERA_TEST_DATABASE_URL="$$url" scripts/test
	scripts/live-suites

fuzz: ## fuzz every operation of /openapi.json with schemathesis (long run)
	scripts/fuzz

openapi: ## /openapi.json as consumers see it: redocly lint (recommended), enums, a generated Python client driving the API
	scripts/openapi-clients

chutes-client: ## the published chutes CLI and library (pinned, from PyPI) against a fresh server
	scripts/chutes-client

webhook-faults: ## webhook delivery under faults (receiver down, SIGKILL, database restart, burst), verified with the standardwebhooks package
	scripts/webhook-faults

lint: ## rustfmt check + clippy with warnings denied (the domain also with its mock feature)
	cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings && cargo clippy -p tessera-domain --features mock --all-targets -- -D warnings

fmt: ## format the workspace
	cargo fmt --all

db: ## print the dev database URL (provisioned if needed)
	@scripts/dev-postgres url tessera

db-stop: ## stop the private PostgreSQL cluster in .data/
	scripts/dev-postgres stop

bench: ## release build + load test against pgbench on a private database; updates docs/benchmarks.md (BENCH_DURATION=15)
	scripts/bench

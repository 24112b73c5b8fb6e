# Every way to build, test, benchmark, fuzz and run the test cluster, each a one-line call of a command that works
# without make too (CONTRIBUTING.md says what each needs). `make` alone runs `make help`, which lists the targets
# from their `## ` comments. FUZZ_ARGS, BENCH_ARGS and IMAGES_ARGS pass options on: make fuzz FUZZ_ARGS="--seconds 600 policy".

.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help build release fmt fmt-check lint deny test-unit test demo prereqs cluster-up cluster-down \
	webhook-stop webhook-start e2e flink-operator fuzz fuzz-build bench bench-quick bench-apiserver \
	bench-policy-cost bench-policy-breakdown images policy-test docs

help: ## list every target with what it does (the default)
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-24s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## debug build of every binary of the workspace (beam-webhook, kubectl-beam, the bench tools)
	cargo build --workspace --bins --locked

release: ## release build of beam-webhook (what the images and the test cluster run)
	cargo build --release --locked -p webhook --bin beam-webhook

fmt: ## format every crate (rustfmt.toml)
	cargo fmt --all

fmt-check: ## check the formatting, as CI does
	cargo fmt --all --check

lint: ## clippy on every target of the workspace, warnings as errors
	cargo clippy --workspace --all-targets --locked -- -D warnings

deny: ## cargo-deny: banned crates, licences, sources (deny.toml)
	cargo deny --log-level error check bans licenses sources

test-unit: ## unit and integration tests of the workspace (the end-to-end scenarios skip without a cluster)
	cargo test --workspace --locked

test: ## every check CI runs, cluster included (scripts/test.sh; root, see README's two commands)
	bash scripts/test.sh

docs: ## rewrite docs/reference/ from the binaries' --help (a test fails while a page is stale)
	cargo build --workspace --bins --locked && BEAMSTACK_UPDATE_DOCS=1 cargo test -p e2e --locked --test cli_reference

demo: ## the main job: serve on loopback over TLS, patch and deny reviews, print the metrics, SIGTERM
	bash scripts/demo.sh

prereqs: ## what the test cluster needs, once per machine: Beam's venv, Debian's packages, Flink, the Go-built tools
	bash scripts/beam-venv.sh && bash scripts/e2e-packages.sh && bash scripts/flink-local.sh && bash scripts/e2e-tools.sh

cluster-up: ## a real single-node Kubernetes with Beamstack installed by helm (root; after prereqs and release)
	bash scripts/e2e-cluster.sh up

cluster-down: ## stop what cluster-up started and undo what it changed
	bash scripts/e2e-cluster.sh down

webhook-stop: ## scale the test cluster's webhook to zero pods
	bash scripts/e2e-cluster.sh webhook-stop

webhook-start: ## scale it back and wait until both pods are Ready
	bash scripts/e2e-cluster.sh webhook-start

e2e: ## the end-to-end scenarios against the running test cluster
	BEAMSTACK_E2E=1 cargo test -p e2e --locked

flink-operator: ## only the Flink operator scenarios, one at a time
	BEAMSTACK_E2E=1 cargo test -p e2e --test flink_operator --locked -- --test-threads=1

fuzz: ## every cargo-fuzz target for 50 s (scripts/fuzz.sh; FUZZ_ARGS for others)
	bash scripts/fuzz.sh $(FUZZ_ARGS)

fuzz-build: ## build the fuzz targets only
	bash scripts/fuzz.sh --build-only

bench: ## every benchmark but the API-server one (load, policy scale, tenant scale, CEL against cel-go, the plugin), three runs: writes bench/BENCHMARKS.md and bench/BENCHMARKS.jsonl
	bash bench/run.sh $(BENCH_ARGS)

bench-quick: ## the same, one run with shorter windows and fewer points (what CI would run)
	bash bench/run.sh --quick $(BENCH_ARGS)

bench-apiserver: ## also the API-server benchmark: creates through a real kube-apiserver (brings the test cluster up and down)
	bash bench/run.sh --apiserver $(BENCH_ARGS)

bench-policy-cost: ## one admission's cost with the system allocator (cargo bench)
	cargo bench -p beamstack --bench policy_cost

bench-policy-breakdown: ## the same, per policy
	cargo bench -p beamstack --bench policy_breakdown

images: ## build every image of images/ with docker buildx or buildah (images/build.sh; IMAGES_ARGS for others)
	bash images/build.sh $(IMAGES_ARGS)

policy-test: ## the shipped policies' tests: kubectl beam policy test policies/
	cargo run --quiet --locked -p kubectl-beam -- policy test policies/

# game-sessions: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/game-sessions
OUT ?= out
SAMPLE := sample/sample_day.jsonl.gz
TRIGGERS := sample/campaign_triggers.yaml

.PHONY: venv run test test-fast sample stream bench latency load clean

# What the whole test suite needs besides the venv; each feature below adds its
# own (`TEST_DEPS += ...`). Second expansion lets `test` see the later additions.
.SECONDEXPANSION:
TEST_DEPS := venv

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	$(COMPILE)
	touch $@

# The job's own modules byte-compiled, as pip compiles installed packages: where
# Python is told not to write its caches (PYTHONDONTWRITEBYTECODE), every run
# would compile them again (~70 ms of each job's start, measured).
COMPILE = $(PY) -m compileall -q pipelines transforms sessions schemas tools > /dev/null

## Replay the bundled sample day on the DirectRunner, with the six campaign use cases as triggers, and show what it produced.
run: venv
	rm -rf $(OUT)/sample
	$(PY) -m pipelines.game_sessions --input=$(SAMPLE) --output_dir=$(OUT)/sample \
	    --output_format=both --runner=DirectRunner --triggers=$(TRIGGERS)
	$(PY) -m tools.show_output $(OUT)/sample

## Every test, the long end-to-end ones included (what CI runs).
test: $$(TEST_DEPS)
	$(PY) -m pytest -q

## The quick ones only.
test-fast: venv
	$(PY) -m pytest -q -m "not e2e"

## Regenerate the bundled sample (a few thousand events of one day).
sample: venv
	$(PY) -m tools.generate_events --events=5000 --seed=11 --output=$(SAMPLE)

## Live: the Pub/Sub emulator, the streaming job and the sample played 300x faster; prints session events.
stream: venv
	$(PY) -m tools.live_demo --input=$(SAMPLE)

## Replay benchmark: 250k, 1M and 4M generated events (cached in ~/.cache), the plain replay
## command (one worker process per core), median of 3 runs: events/s, CPU time and peak RSS of all processes.
bench: venv
	$(COMPILE)
	$(PY) -m tools.bench --sizes=250000,1000000,4000000

## Live latency against the emulator: switch -> changed, end + gap -> ended, p50/p95.
latency: venv
	$(PY) -m tools.live_scenario --users=30 --seconds=120

## Live under load against the emulator: LOAD_RATE events/s for LOAD_SECONDS, checked against the replay.
LOAD_RATE ?= 1000
LOAD_SECONDS ?= 120
load: venv
	$(PY) -m tools.live_load --rate=$(LOAD_RATE) --seconds=$(LOAD_SECONDS)

clean:
	rm -rf $(OUT) .pytest_cache

## The sessions dashboard of the sample day: replay it (if out/sample has no Avro yet),
## compute the reports into out/report and render out/report/dashboard.html.
dashboard: venv
	ls $(OUT)/sample/gs_game_session_ended/*/*.avro >/dev/null 2>&1 || \
	    $(PY) -m pipelines.game_sessions --input=$(SAMPLE) --output_dir=$(OUT)/sample \
	        --output_format=both --runner=DirectRunner
	$(PY) -m pipelines.session_report --input_dir=$(OUT)/sample --output_dir=$(OUT)/report \
	    --runner=DirectRunner

## The same over a generated week (trends need more than the sample's one day): out/week/report.
dashboard-week: venv
	rm -rf $(OUT)/week
	mkdir -p $(OUT)/week
	$(PY) -m tools.generate_days --days=7 --events=4000 --arrivals=4 --output=$(OUT)/week/events.jsonl.gz
	$(PY) -m pipelines.game_sessions --input=$(OUT)/week/events.jsonl.gz --output_dir=$(OUT)/week/replay \
	    --output_format=avro --runner=DirectRunner
	$(PY) -m pipelines.session_report --input_dir=$(OUT)/week/replay --output_dir=$(OUT)/week/report \
	    --runner=DirectRunner

## 60 generated days, the last 30 reported with the first 30 as history: out/60d/report, and
## the screenshot in docs/dashboard.png (headless Chromium).
dashboard-60d: venv chromium
	rm -rf $(OUT)/60d
	mkdir -p $(OUT)/60d
	$(PY) -m tools.generate_days --days=60 --events=5000 --arrivals=4 --games_per_title=3 \
	    --output=$(OUT)/60d/events.jsonl.gz
	$(PY) -m pipelines.game_sessions --input=$(OUT)/60d/events.jsonl.gz --output_dir=$(OUT)/60d/replay \
	    --output_format=avro --runner=DirectRunner
	$(PY) -m pipelines.session_report --input_dir=$(OUT)/60d/replay --output_dir=$(OUT)/60d/report \
	    --from_date=2026-02-05 --to_date=2026-03-06 --runner=DirectRunner
	$(PY) -m tools.dashboard $(OUT)/60d/report --png=docs/dashboard.png --png_scale=0.75

## Headless Chromium for the dashboard tests (Debian's package).
chromium:
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

.PHONY: dashboard dashboard-week dashboard-60d chromium
TEST_DEPS += chromium

# --- Flink and Dataflow (docs/flink-dataflow.md) ------------------------------

## Beam's Flink job server, fetched from Maven Central into ~/.cache/game-sessions.
flink-jar:
	scripts/fetch_flink_job_server.sh >/dev/null

## Replay the bundled sample on an embedded Flink cluster through Beam's Flink job server.
flink: venv flink-jar
	rm -rf $(OUT)/flink
	$(PY) -m pipelines.game_sessions --input=$(SAMPLE) --output_dir=$(OUT)/flink --output_format=both \
	    --runner=FlinkRunner '--flink_master=[local]' --flink_job_server_jar=$$(scripts/fetch_flink_job_server.sh) \
	    --environment_type=LOOPBACK --parallelism=2
	$(PY) -m tools.show_output $(OUT)/flink

.PHONY: flink-jar flink
TEST_DEPS += flink-jar

# --- Live on a Flink session cluster (docs/flink-dataflow.md, README Operations) ---
# The cluster runs in a private network namespace; FLINK_RUN_DIR holds its
# generated flink-conf.yaml, logs, pids and checkpoints (outside git).
FLINK_RUN_DIR ?= /tmp/game-sessions-flink
FLINK_ENV := FLINK_RUN_DIR=$(FLINK_RUN_DIR)

## Flink 1.19 + Beam 2.62 jars (Maven Central) and Beam's Go boot program for the Python workers, cached.
flink-cluster-deps:
	scripts/fetch_flink_cluster.sh >/dev/null
	scripts/fetch_beam_boot.sh >/dev/null

## A local Flink session cluster: JobManager (REST 127.0.0.1:8081) + 2 TaskManagers + Beam's expansion service.
flink-cluster: venv flink-cluster-deps
	$(FLINK_ENV) scripts/flink_cluster.sh start

flink-cluster-stop:
	$(FLINK_ENV) scripts/flink_cluster.sh stop

flink-cluster-status:
	$(FLINK_ENV) scripts/flink_cluster.sh status

## The live job on that cluster: emulator in and out, the first 2,000 messages of the sample at 300x, what it published printed.
flink-live: flink-cluster
	$(FLINK_ENV) scripts/flink_cluster.sh exec $(CURDIR)/$(PY) -m tools.flink_live demo

## Throughput on that cluster at parallelism 2: `make load`'s stream at RATE events/s (comma-separated, one after the
## other) for FLINK_LOAD_SECONDS each, checked against the replay; changed and ended latency. Fails unless exact.
RATE ?= 20,50,100,200,400
FLINK_LOAD_SECONDS ?= 40
## FLINK_LOAD_WARM_SECONDS: play the first rate's stream this long first, not measured (default 0: probes only).
FLINK_LOAD_WARM_SECONDS ?= 0
flink-load: flink-cluster
	$(FLINK_ENV) scripts/flink_cluster.sh exec $(CURDIR)/$(PY) -m tools.flink_live load --rate=$(RATE) \
	    --seconds=$(FLINK_LOAD_SECONDS) --drain_seconds=150 --warm_load_seconds=$(FLINK_LOAD_WARM_SECONDS)

.PHONY: flink-cluster-deps flink-cluster flink-cluster-stop flink-cluster-status flink-live flink-load
TEST_DEPS += flink-cluster-deps

# Dataflow settings come from the environment: PROJECT, REGION, BUCKET (a bucket
# name, no gs://), INPUT (gs:// glob) for `make dataflow`, TEMPLATE_IMAGE
# (REGION-docker.pkg.dev/PROJECT/REPOSITORY/game-sessions:TAG) for `make flex-template`.
DATAFLOW_OUTPUT ?= gs://$(BUCKET)/game-sessions/replay
TEMPLATE_PATH ?= gs://$(BUCKET)/templates/game-sessions.json
# $(call require,NAMES,TARGET): stop before running anything if a setting is empty.
require = $(foreach name,$(1),$(if $(strip $($(name))),,$(error $(name) is not set: `make $(2)` needs $(1); see docs/flink-dataflow.md)))

## Replay INPUT on Dataflow into DATAFLOW_OUTPUT (workers install this package from setup.py).
dataflow: venv
	$(call require,PROJECT REGION BUCKET INPUT,dataflow)
	$(PY) -m pipelines.game_sessions --runner=DataflowRunner --project=$(PROJECT) --region=$(REGION) \
	    --temp_location=gs://$(BUCKET)/tmp --staging_location=gs://$(BUCKET)/staging --setup_file=./setup.py \
	    '--input=$(INPUT)' --output_dir=$(DATAFLOW_OUTPUT) --output_format=avro

## Build the Flex Template: the launcher image with Cloud Build (Dockerfile), the spec at TEMPLATE_PATH.
flex-template:
	$(call require,PROJECT REGION BUCKET TEMPLATE_IMAGE,flex-template)
	@command -v gcloud >/dev/null || { echo "make flex-template: needs the gcloud CLI" >&2; exit 1; }
	gcloud builds submit --project=$(PROJECT) --region=$(REGION) --tag=$(TEMPLATE_IMAGE) .
	gcloud dataflow flex-template build $(TEMPLATE_PATH) --project=$(PROJECT) --image=$(TEMPLATE_IMAGE) \
	    --sdk-language=PYTHON --metadata-file=metadata.json

.PHONY: dataflow flex-template

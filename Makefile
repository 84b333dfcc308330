# game-sessions: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/game-sessions
OUT ?= out
SAMPLE := sample/sample_day.jsonl.gz

.PHONY: venv run test test-fast sample bench clean

# What the whole test suite needs besides the venv; each feature adds its own.
TEST_DEPS := venv

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

## Replay the bundled sample day on the DirectRunner and show what it produced.
run: venv
	rm -rf $(OUT)/sample
	$(PY) -m pipelines.game_sessions --input=$(SAMPLE) --output_dir=$(OUT)/sample \
	    --output_format=both --runner=DirectRunner
	$(PY) -m tools.show_output $(OUT)/sample

## Every test, the long end-to-end ones included (what CI runs).
test: $(TEST_DEPS)
	$(PY) -m pytest -q

## The quick ones only.
test-fast: venv
	$(PY) -m pytest -q -m "not e2e"

## Regenerate the bundled sample (a few thousand events of one day).
sample: venv
	$(PY) -m tools.generate_events --events=5000 --seed=11 --output=$(SAMPLE)

clean:
	rm -rf $(OUT) .pytest_cache

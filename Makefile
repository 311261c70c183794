# streamlake: `make demo` and `make test` are the two commands a newcomer needs. `make help` lists all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
STACK       := .stack
JARS_STAMP  := $(STACK)/jars/.resolved
VENV_STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup venv jars azurite up down status topics plan submit run sql demo test chaos bench lint clean \
	compose-up compose-down compose-demo compose-test

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON_BOOT) >/dev/null || { echo "Python 3.11 is required ($(PYTHON_BOOT) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $@

$(JARS_STAMP): connectors/maven/pom.xml
	@command -v mvn >/dev/null || { echo "Maven is required (apt-get install maven)"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17 is required (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	rm -rf $(STACK)/jars/flink $(STACK)/jars/kafka
	mvn --batch-mode --quiet -f connectors/maven/pom.xml package
	@touch $@

# The project's own JVM functions (udfs/): built from source, shaded, never committed.
UDFS_JAR := $(STACK)/jars/udfs/streamlake-udfs.jar
$(UDFS_JAR): udfs/pom.xml $(shell find udfs/src -name '*.java')
	@command -v mvn >/dev/null || { echo "Maven is required (apt-get install maven)"; exit 1; }
	mvn --batch-mode --quiet -f udfs/pom.xml package

# The Azure Storage emulator, for testing the lake on ADLS Gen2 (abfss://) on loopback.
AZURITE_VERSION := 3.35.0
AZURITE_STAMP   := $(STACK)/node/.azurite-$(AZURITE_VERSION)
$(AZURITE_STAMP):
	@command -v npm >/dev/null || { echo "npm is required for the Azurite emulator (apt-get install npm)"; exit 1; }
	npm install --prefix $(STACK)/node --no-audit --no-fund --silent azurite@$(AZURITE_VERSION)
	@touch $@

venv: $(VENV_STAMP) ## create .venv with pinned Python packages
jars: $(JARS_STAMP) $(UDFS_JAR) ## resolve the connector and broker jars, build udfs/ (Maven, into .stack/jars)
azurite: $(AZURITE_STAMP) ## install the Azurite emulator (npm, into .stack/node) for the ADLS tests
setup: venv jars azurite ## everything above; with caches warm this does no network work

up: setup ## start the local Kafka broker and Flink cluster (loopback only)
	$(PY) -m jobs up

down: ## stop exactly the processes `make up` started
	@if [ -x $(PY) ]; then $(PY) -m jobs down; else echo "nothing to stop"; fi

status: setup ## processes, health and jobs of the local stack
	$(PY) -m jobs status

topics: up ## create the pipeline's Kafka topics
	$(PY) -m jobs topics

plan: venv ## print the complete SQL the config compiles to
	$(PY) -m jobs plan

submit: up ## submit a job to the cluster: make submit JOB=demo_event_counts [ARGS=--bounded]
	@test -n "$(JOB)" || { echo "usage: make submit JOB=<name> (see make plan)"; exit 2; }
	$(PY) -m jobs topics
	$(PY) -m jobs submit $(JOB) $(ARGS)

sql: up ## Flink SQL client on the cluster; make sql FILE=q.sql runs a file and prints the result
	$(PY) -m jobs sql $(if $(FILE),--file $(FILE),)

# The keyed hash of PII fields needs a key from the environment; the demo and tests use a
# throwaway one when none is set. Production sets STREAMLAKE_PII_HASH_KEY from its secret store.
DEMO_PII_KEY := $${STREAMLAKE_PII_HASH_KEY:-demo-only-not-a-secret}

demo: setup ## run the pipeline end to end on the local stack and check the results
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) $(PY) -m jobs demo

test: setup ## unit, job (local executor + real broker), integration (real cluster) and chaos tests
	$(PY) -m jobs up
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) $(PY) -m pytest $(PYTEST_ARGS)

chaos: setup ## the chaos test alone (part of make test): kills under a running pipeline (~6 min)
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) $(PY) -m pytest -m chaos -s $(PYTEST_ARGS)

# The benchmark's peer (PySpark Structured Streaming + Delta), in its own virtualenv: it is measured,
# never imported by the pipeline. Its Kafka and Delta jars come from Maven Central at first start.
PEER_PYSPARK := 4.0.0
PEER_DELTA   := 4.0.0
PEER_STAMP   := $(STACK)/peer-venv/.installed-$(PEER_PYSPARK)-$(PEER_DELTA)
$(PEER_STAMP):
	test -x $(STACK)/peer-venv/bin/python || $(PYTHON_BOOT) -m venv $(STACK)/peer-venv
	$(STACK)/peer-venv/bin/pip install --quiet pyspark==$(PEER_PYSPARK) delta-spark==$(PEER_DELTA)
	mvn --batch-mode --quiet -f bench/peer/pom.xml package
	@touch $@

bench: setup $(PEER_STAMP) ## measure (not test): pipeline vs baseline vs PySpark peer, loader, parsing; writes bench/results/
	$(PY) -m jobs up
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) $(PY) -m bench.pipeline
	$(PY) -m bench.loader
	$(PY) -m bench.silver_parse
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) $(PY) -m bench.silver_plan

lint: venv ## ruff, ruff format --check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The compose mini-cluster (docker/): the same conf/, one process per container, on a dockerd of its
# own (docker/engine.sh); host ports 127.0.0.1:18081 (Flink UI) and 127.0.0.1:19092 (Kafka).
compose-up: ## build the images, start the compose stack (TASKMANAGERS=2) and submit the jobs
	TASKMANAGERS=$${TASKMANAGERS:-2} STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) docker/compose.sh up

compose-down: ## remove the compose stack's containers, network and volumes; stop its dockerd
	docker/compose.sh down

compose-demo: ## a fresh compose stack, the demo's data through its running jobs, checked
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) docker/compose.sh demo

compose-test: ## CI: the compose demo with a TaskManager killed mid-run, then teardown (installs Docker if CI=true)
	STREAMLAKE_PII_HASH_KEY=$(DEMO_PII_KEY) docker/compose.sh test

clean: down ## remove the stack's state (topics, checkpoints, logs); keeps .venv and jars
	rm -rf $(STACK)/kafka $(STACK)/flink $(STACK)/logs $(STACK)/run $(STACK)/sql

#!/usr/bin/env bash
# The compose mini-cluster's commands (the Makefile's compose-* targets call these):
#
#   docker/compose.sh up      engine, base image, images; the stack with $TASKMANAGERS (2)
#                             TaskManagers; the submit service creates the topics, submits the jobs
#   docker/compose.sh down    containers, network and volumes of the stack; then the dockerd
#   docker/compose.sh demo    a fresh stack, the demo's data through its running jobs, checked
#   docker/compose.sh test    CI: as demo, with one TaskManager container killed mid-run (docker
#                             kill by id), then everything torn down; non-zero on any failure
#
# The engine is docker/engine.sh's: a dockerd on its own data root and socket. Its data root keeps
# the base image and the build layers between runs (the cache); nothing else is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=docker/engine.sh
export DOCKER_HOST=unix://${STREAMLAKE_DOCKER_SOCK:-/run/streamlake-docker.sock}
PROJECT=${STREAMLAKE_COMPOSE_PROJECT:-streamlake}
COMPOSE=(docker-compose -p "$PROJECT" -f docker/compose.yaml --profile tools)
TASKMANAGERS=${TASKMANAGERS:-2}
FLINK_PORT=${STREAMLAKE_COMPOSE_FLINK_PORT:-18081}
KAFKA_PORT=${STREAMLAKE_COMPOSE_KAFKA_PORT:-19092}
export STREAMLAKE_PII_HASH_KEY=${STREAMLAKE_PII_HASH_KEY:-demo-only-not-a-secret}
LOGS=.stack/compose
mkdir -p "$LOGS"

say() { printf '%s compose: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

engine_running() { [ -S "${DOCKER_HOST#unix://}" ] && docker version >/dev/null 2>&1; }

engine() {
	$ENGINE check >/dev/null || {
		$ENGINE check
		exit 1
	}
	$ENGINE start
	$ENGINE base-image
}

build() {
	# The host's extra CAs (a TLS-inspecting egress, if any): see docker/ca-certificates/.
	cp /usr/local/share/ca-certificates/*.crt docker/ca-certificates/ 2>/dev/null || true
	local t0=$SECONDS
	for svc in broker jobmanager; do
		nice -n 10 "${COMPOSE[@]}" build --force-rm "$svc" >"$LOGS/build-$svc.log" 2>&1 || {
			tail -30 "$LOGS/build-$svc.log"
			say "building $svc failed (log: $LOGS/build-$svc.log)"
			return 1
		}
	done
	say "images streamlake-broker:dev, streamlake-flink:dev built in $((SECONDS - t0))s"
}

rest() { python3 -c "import json,sys,urllib.request as u; print(json.dumps(json.load(u.urlopen('http://127.0.0.1:$FLINK_PORT' + sys.argv[1], timeout=5))))" "$1"; }

up() {
	engine
	build
	local t0=$SECONDS
	"${COMPOSE[@]}" up -d --scale taskmanager="$TASKMANAGERS" broker jobmanager taskmanager submit loader \
		>"$LOGS/up.log" 2>&1 || {
		tail -30 "$LOGS/up.log"
		"${COMPOSE[@]}" logs --tail 40 submit || true
		say "up failed (log: $LOGS/up.log)"
		return 1
	}
	local submit_rc
	submit_rc=$(docker inspect -f '{{.State.ExitCode}}' "$("${COMPOSE[@]}" ps -q submit)")
	"${COMPOSE[@]}" logs --no-color submit | sed 's/^/  /' | grep -E 'submitted|topics|error' | cut -c1-160 || true
	[ "$submit_rc" = 0 ] || {
		say "the submit service exited $submit_rc"
		return 1
	}
	local tms
	tms=$(rest /overview | python3 -c 'import json,sys; print(json.load(sys.stdin)["taskmanagers"])')
	say "up in $((SECONDS - t0))s: broker, jobmanager, $tms taskmanager(s), loader healthy; submitted: ${STREAMLAKE_SUBMIT_JOBS-silver gold device_anomaly}"
	say "Flink UI http://127.0.0.1:$FLINK_PORT   Kafka 127.0.0.1:$KAFKA_PORT   SQL: docker-compose -p $PROJECT -f docker/compose.yaml run --rm sql   (DOCKER_HOST=$DOCKER_HOST)"
}

down() {
	if engine_running; then
		"${COMPOSE[@]}" down -v --remove-orphans --timeout 20 >"$LOGS/down.log" 2>&1 || {
			tail -20 "$LOGS/down.log"
			return 1
		}
		local left
		left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
		left+=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
		left+=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
		[ -z "$left" ] || {
			say "left after down: $left"
			return 1
		}
		say "down: containers, network and volumes of $PROJECT removed"
	fi
	[ "${1:-}" = keep-engine ] || $ENGINE stop
}

demo() {
	local t0=$SECONDS
	down keep-engine
	STREAMLAKE_SUBMIT_JOBS= up # topics only: the demo submits the jobs on its backlog
	"${COMPOSE[@]}" run --rm --no-deps demo
	say "demo finished in $((SECONDS - t0))s (the stack stays up: make compose-down)"
}

# The TaskManager container running the Silver job's tasks (its hostname is its container id, and
# the TaskManager's resource id: streamlake/stack/container.py).
silver_taskmanager() {
	python3 - "$FLINK_PORT" <<'EOF'
import json, sys, urllib.request as u
base = f"http://127.0.0.1:{sys.argv[1]}"
get = lambda p: json.load(u.urlopen(base + p, timeout=5))
jid = next(j["jid"] for j in get("/jobs/overview")["jobs"] if j["name"] == "silver" and j["state"] == "RUNNING")
vid = get(f"/jobs/{jid}")["vertices"][0]["id"]
print(get(f"/jobs/{jid}/vertices/{vid}/taskmanagers")["taskmanagers"][0]["taskmanager-id"])
EOF
}

# The teardown of `test`, on any exit: the stack, and the dockerd if the test started it.
T0=$SECONDS
STARTED_ENGINE=0
teardown() {
	local code=$?
	trap - EXIT
	say "teardown"
	if [ "$STARTED_ENGINE" = 1 ]; then down || code=1; else down keep-engine || code=1; fi
	say "compose-test $([ "$code" = 0 ] && echo PASSED || echo FAILED) in $((SECONDS - T0))s"
	exit "$code"
}

test_() {
	local rc=0
	if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then $ENGINE install; fi
	engine_running || STARTED_ENGINE=1
	trap teardown EXIT
	engine
	down keep-engine # a clean Docker state for the stack (images and layers are the cache)
	TASKMANAGERS=2 STREAMLAKE_SUBMIT_JOBS= up
	local log=$LOGS/demo.log t_demo=$SECONDS
	: >"$log" # empty before anything reads it (the demo writes it in the background)
	"${COMPOSE[@]}" run --rm --no-deps -T demo python -m jobs demo --live --await-kill >"$log" 2>&1 &
	local demo_pid=$!
	tail -f "$log" --pid "$demo_pid" &
	local tail_pid=$!
	until grep -q '== KILL A TASKMANAGER NOW' "$log"; do
		kill -0 "$demo_pid" 2>/dev/null || break
		sleep 0.5
	done
	if grep -q '== KILL A TASKMANAGER NOW' "$log"; then
		local tm
		tm=$(silver_taskmanager)
		docker kill "$tm" >/dev/null
		say "killed TaskManager container $tm (it ran the Silver job) at +$((SECONDS - t_demo))s of the demo"
	fi
	wait "$demo_pid" || rc=$?
	kill "$tail_pid" 2>/dev/null || true
	[ "$rc" = 0 ] || {
		say "the demo failed (exit $rc); logs of the stack:"
		"${COMPOSE[@]}" logs --tail 30 --no-color jobmanager taskmanager loader || true
		return 1
	}
	grep -q '^OK: demo finished' "$log" || return 1
	say "demo with a TaskManager killed mid-run: OK in $((SECONDS - t_demo))s"
}

case "${1:-}" in
up) up ;;
down) down "${2:-}" ;;
demo) demo ;;
test) test_ ;;
*)
	sed -n '2,11p' "$0"
	exit 2
	;;
esac

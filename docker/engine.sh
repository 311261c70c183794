#!/usr/bin/env bash
# The Docker engine the compose stack runs on: checked, installed (CI, as root), started on a data
# root and socket of its own (nothing else's daemon is touched), stopped by its pidfile; and the
# base image, bootstrapped offline with debootstrap only when debian:bookworm-slim is absent.
#
#   docker/engine.sh check          say what is missing and how to get it (exit 1 if anything is)
#   docker/engine.sh install        apt-get install the engine (root only; CI=true, or asked)
#   docker/engine.sh start          start dockerd unless ours already runs; print DOCKER_HOST
#   docker/engine.sh stop           stop the dockerd this script started (its pidfile)
#   docker/engine.sh base-image     make debian:bookworm-slim if the engine has no such image
#
# Everything is overridable from the environment (defaults below). The data root is kept between
# runs: it is the cache of the base image and of the build layers.
set -euo pipefail

DATA_ROOT=${STREAMLAKE_DOCKER_DATA_ROOT:-/var/lib/streamlake-docker}
EXEC_ROOT=${STREAMLAKE_DOCKER_EXEC_ROOT:-/run/streamlake-docker}
PIDFILE=${STREAMLAKE_DOCKER_PIDFILE:-/run/streamlake-docker.pid}
SOCK=${STREAMLAKE_DOCKER_SOCK:-/run/streamlake-docker.sock}
LOG=${STREAMLAKE_DOCKER_LOG:-/var/log/streamlake-dockerd.log}
BASE_IMAGE=debian:bookworm-slim
PACKAGES="docker.io docker-compose debootstrap"
export DOCKER_HOST=unix://$SOCK

missing() {
	local out=()
	command -v dockerd >/dev/null || out+=("dockerd (the Docker engine)")
	command -v docker >/dev/null || out+=("docker (the Docker CLI)")
	command -v docker-compose >/dev/null || out+=("docker-compose (Compose v1, 1.29 or later)")
	if ! image_present 2>/dev/null; then
		command -v debootstrap >/dev/null || out+=("debootstrap (only to make $BASE_IMAGE offline)")
	fi
	printf '%s\n' "${out[@]}"
}

image_present() { running && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; }

running() { [ -S "$SOCK" ] && [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

cmd_check() {
	local m
	m=$(missing)
	if [ -n "$m" ]; then
		echo "missing for the compose stack:"
		sed 's/^/  - /' <<<"$m"
		echo "get them (Debian/Ubuntu, as root): apt-get install -y --no-install-recommends $PACKAGES"
		echo "(make compose-test installs them itself when run as root with CI=true)"
		return 1
	fi
	echo "engine: dockerd, docker and docker-compose present"
}

cmd_install() {
	[ -z "$(missing)" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		cmd_check || true
		echo "not root: cannot install them here" >&2
		return 1
	fi
	echo "installing $PACKAGES (apt-get)"
	# A fresh machine's package lists may be empty or old: refresh them once first.
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES >/dev/null
}

cmd_start() {
	if running; then
		echo "dockerd: already running (pid $(cat "$PIDFILE"), DOCKER_HOST=$DOCKER_HOST)"
		return 0
	fi
	cmd_check >/dev/null || {
		cmd_check
		return 1
	}
	mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
	# Published ports bind 127.0.0.1 unless a service says otherwise (and ours all say so).
	nohup dockerd --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
		-H "unix://$SOCK" --ip 127.0.0.1 >>"$LOG" 2>&1 &
	for _ in $(seq 1 60); do
		docker version >/dev/null 2>&1 && {
			echo "dockerd: started (pid $(cat "$PIDFILE"), data root $DATA_ROOT, DOCKER_HOST=$DOCKER_HOST)"
			return 0
		}
		sleep 0.5
	done
	echo "dockerd did not answer on $SOCK within 30 s; last lines of $LOG:" >&2
	tail -20 "$LOG" >&2
	return 1
}

cmd_stop() {
	if [ ! -f "$PIDFILE" ]; then
		echo "dockerd: not started by us (no $PIDFILE)"
		return 0
	fi
	local pid
	pid=$(cat "$PIDFILE")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "dockerd (pid $pid) did not stop within 30 s" >&2
			return 1
		fi
	fi
	rm -f "$PIDFILE"
	echo "dockerd: stopped (pid $pid)"
}

mirror() {
	# The Debian mirror apt is configured with (deb822 URIs: or a one-line deb entry).
	local uri
	uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
	[ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -v security | head -1 | awk '{print $2}')
	echo "${uri:-http://deb.debian.org/debian}"
}

cmd_base_image() {
	if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
		echo "base image: $BASE_IMAGE present"
		return 0
	fi
	if timeout 20 docker pull "$BASE_IMAGE" >/dev/null 2>&1; then
		echo "base image: $BASE_IMAGE pulled"
		return 0
	fi
	command -v debootstrap >/dev/null || {
		echo "$BASE_IMAGE is absent and no registry answers: install debootstrap to make it" >&2
		return 1
	}
	local rootfs
	rootfs=$(mktemp -d /var/tmp/streamlake-rootfs.XXXXXX)
	echo "base image: bootstrapping $BASE_IMAGE from $(mirror) (debootstrap, about a minute)"
	nice -n 10 debootstrap --variant=minbase bookworm "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 || {
		tail -20 "$rootfs.log" >&2
		return 1
	}
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	tar --numeric-owner -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
	rm -rf "$rootfs" "$rootfs.log"
	echo "base image: $BASE_IMAGE imported"
}

case "${1:-}" in
check) cmd_check ;;
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
base-image) cmd_base_image ;;
*)
	sed -n '2,13p' "$0"
	exit 2
	;;
esac

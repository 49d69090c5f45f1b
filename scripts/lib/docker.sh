# shellcheck shell=bash
# Docker engine and offline base image for tests and the main job.
#
# Source this file, then call `docker_engine_up`; it starts dockerd only when
# no engine answers, and `docker_engine_down` stops only a dockerd this shell
# started (by its pid), so a developer's running engine is left alone.
# `docker_base_image [SUITE]` builds localhost/debian:SUITE (default bookworm,
# or $WARREN_BASE_IMAGE for it) with debootstrap when the image is missing:
# there is no Docker Hub on CI machines.

# shellcheck source=rootfs.sh
. "$(dirname "${BASH_SOURCE[0]}")/rootfs.sh"

WARREN_DOCKERD_PID=""
WARREN_BASE_IMAGE="${WARREN_BASE_IMAGE:-localhost/debian:bookworm}"

docker_engine_up() {
  if docker info >/dev/null 2>&1; then return 0; fi
  local log=/var/log/warren-dockerd.log
  echo "docker: starting dockerd (log: $log)" >&2
  dockerd >"$log" 2>&1 &
  WARREN_DOCKERD_PID=$!
  local i
  for i in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$WARREN_DOCKERD_PID" 2>/dev/null; then
      echo "docker: dockerd exited during start-up; last lines of $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "docker: dockerd did not answer within 60 s; see $log" >&2
  return 1
}

docker_engine_down() {
  [ -n "$WARREN_DOCKERD_PID" ] || return 0
  kill "$WARREN_DOCKERD_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 60); do
    kill -0 "$WARREN_DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  WARREN_DOCKERD_PID=""
}

docker_base_image() {
  local suite=${1:-bookworm} image dir
  if [ "$suite" = bookworm ]; then image=$WARREN_BASE_IMAGE; else image=localhost/debian:$suite; fi
  if docker image inspect "$image" >/dev/null 2>&1; then return 0; fi
  dir=$(mktemp -d /var/tmp/warren-rootfs.XXXXXX)
  echo "docker: building $image with debootstrap from $(debian_mirror)" >&2
  if ! debootstrap_into "$suite" "$dir"; then rm -rf "$dir"; return 1; fi
  tar -C "$dir" -c . | docker import - "$image" >/dev/null
  local rc=$?
  rm -rf "$dir"
  return $rc
}

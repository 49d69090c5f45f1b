# shellcheck shell=bash
# Debian root filesystems built offline with debootstrap, from the mirror apt
# already uses on this machine (there is no Docker Hub and no other network).
# Shared by the Docker base images (docker.sh) and anything else that needs a
# Debian userland of a given release (bookworm: RabbitMQ 3.10, trixie: 4.0).

# The Debian mirror apt uses here, or deb.debian.org when none is configured.
debian_mirror() {
  local mirror
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  echo "${mirror:-http://deb.debian.org/debian}"
}

# debootstrap_into SUITE DIR: a minbase root of Debian SUITE in DIR (which
# must not exist yet or be empty); its log is /var/log/warren-debootstrap-SUITE.log.
debootstrap_into() {
  local suite=$1 dir=$2 log=/var/log/warren-debootstrap-$1.log
  if ! debootstrap --variant=minbase "$suite" "$dir" "$(debian_mirror)" >"$log" 2>&1; then
    echo "rootfs: debootstrap of $suite into $dir failed; see $log" >&2
    return 1
  fi
}

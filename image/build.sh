#!/usr/bin/env bash
# make image: the container image $IMAGE (default konflux-telemetry:dev).
#
#   IMAGE_BUILD=auto        (default) the Containerfile where its base images can be
#                           pulled, else scratch
#   IMAGE_BUILD=containerfile   the Containerfile: a multi-stage build on rust and
#                           distroless/static (needs a registry)
#   IMAGE_BUILD=scratch     no registry: the static musl binary built here by cargo, on
#                           scratch with CA certificates and user 65532
#                           (image/scratch.Containerfile)
#
# Both give the same two images: $IMAGE, /usr/local/bin/konflux-telemetry as entry point,
# `run` as its default command, user 65532; and $SINK_IMAGE (default
# konflux-telemetry-sink:dev), the test sink alone (konflux-telemetry-sink, for the kind
# e2e), never in the daemon's image. The engine is $ENGINE, else docker when it answers,
# else podman.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
image="${IMAGE:-konflux-telemetry:dev}"
sink_image="${SINK_IMAGE:-konflux-telemetry-sink:dev}"
mode="${IMAGE_BUILD:-auto}"
musl=x86_64-unknown-linux-musl

log() { echo "image: $*" >&2; }
die() { log "error: $*"; exit 1; }

engine="${ENGINE:-}"
if [[ -z $engine ]]; then
  if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  else
    die "no container engine: start a Docker engine (e2e/kind/engine/docker-engine.sh start) or install podman"
  fi
fi

# The bases the Containerfile names (its FROM lines).
bases() { awk '$1 == "FROM" {print $2}' Containerfile | grep -v '^\$' | sed "s/\${RUST_VERSION}/$(awk -F= '/^ARG RUST_VERSION=/ {print $2}' Containerfile)/"; }

if [[ $mode == auto ]]; then
  mode=scratch
  if timeout 120 "$engine" pull -q "$(bases | tail -n 1)" >/dev/null 2>&1; then mode=containerfile; fi
  log "IMAGE_BUILD=auto: $mode"
fi

case "$mode" in
  containerfile)
    "$engine" build -f Containerfile -t "$image" .
    "$engine" build -f Containerfile --target sink -t "$sink_image" .
    ;;
  scratch)
    command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc not found: apt-get install musl-tools"
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$musl"; then
      rustup target add "$musl" >&2
    fi
    t=$SECONDS
    # ring's C and assembly parts need musl-gcc. The binary is stripped after the build,
    # so that the release profile (and the dependencies built for the host) stay the
    # same as `make release`'s.
    CC_x86_64_unknown_linux_musl=musl-gcc \
      cargo build --release --locked --bins --target "$musl" >&2
    log "cargo build --target $musl: $((SECONDS - t))s"
    ca=/etc/ssl/certs/ca-certificates.crt
    [[ -f $ca ]] || die "$ca not found: apt-get install ca-certificates"
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    # scratch_image BINARY TAG: BINARY alone on scratch (image/scratch.Containerfile, or
    # image/scratch-sink.Containerfile for the sink).
    scratch_image() {
      local bin=$1 tag=$2 c="$ctx/$1"
      mkdir -p "$c/usr/local/bin" "$c/etc/ssl/certs" "$c/tmp"
      chmod 1777 "$c/tmp"
      install -m 0755 "${CARGO_TARGET_DIR:-target}/$musl/release/$bin" "$c/usr/local/bin/"
      strip "$c/usr/local/bin/$bin"
      cp "$ca" "$c/etc/ssl/certs/"
      printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$c/etc/passwd"
      printf 'root:x:0:\nnonroot:x:65532:\n' >"$c/etc/group"
      cp "image/scratch${bin#konflux-telemetry}.Containerfile" "$c/Containerfile"
      "$engine" build -q -f "$c/Containerfile" -t "$tag" "$c" >/dev/null
    }
    scratch_image konflux-telemetry "$image"
    scratch_image konflux-telemetry-sink "$sink_image"
    ;;
  *) die "IMAGE_BUILD must be auto, containerfile or scratch (not '$mode')" ;;
esac
for tag in "$image" "$sink_image"; do
  size="$("$engine" image inspect --format '{{.Size}}' "$tag")"
  log "built $tag ($mode): $((size / 1024 / 1024)) MiB"
done

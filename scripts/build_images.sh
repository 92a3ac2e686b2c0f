#!/usr/bin/env bash
# Build Percept's images, one at a time, with Docker's build cache (`make images`).
#
#   scripts/build_images.sh [gateway] [face] [object]     # default: all three
#
# Environment:
#   PERCEPT_TAG         image tag (default 0.1.0, as docker-compose.yml names them)
#   PYTHON_IMAGE        base image (default: the Dockerfiles' python:3.11.14-slim-bookworm).
#                       When it is neither here nor pullable, a stand-in is built from
#                       Debian packages (scripts/make_base_image.sh) and used instead.
#   PERCEPT_WHEELHOUSE  a folder holding a CPU torch wheel, for a host that cannot reach
#                       PyTorch's CPU index (scripts/make_wheelhouse.py); unset: the index.
#   PYTHON              the Python that runs scripts/make_wheelhouse.py (default .venv's)
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${PERCEPT_TAG:-0.1.0}
BASE=${PYTHON_IMAGE:-python:3.11.14-slim-bookworm}
STANDIN=percept/python-base:3.11-bookworm
PYTHON=${PYTHON:-.venv/bin/python}
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(gateway face object)

# The classic builder: it needs no buildx plugin and no frontend image from a registry.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! docker pull -q "$BASE" >/dev/null 2>&1; then
    echo "$BASE cannot be pulled here: building on a stand-in from Debian packages ($STANDIN)"
    scripts/make_base_image.sh "$STANDIN"
    BASE=$STANDIN
fi

for name in "${names[@]}"; do
    args=(--build-arg "PYTHON_IMAGE=$BASE")
    if [[ $name == object && -n ${PERCEPT_WHEELHOUSE:-} ]]; then
        mapfile -t torch_args < <("$PYTHON" scripts/make_wheelhouse.py "$PERCEPT_WHEELHOUSE")
        for arg in "${torch_args[@]}"; do
            args+=(${arg}) # "--build-arg NAME=VALUE": two words
        done
    fi
    echo "== percept/$name:$TAG (${args[*]})"
    start=$(date +%s)
    docker build -f "Dockerfile.$name" -t "percept/$name:$TAG" "${args[@]}" .
    echo "== percept/$name:$TAG built in $(($(date +%s) - start)) s"
done
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^percept/' || true

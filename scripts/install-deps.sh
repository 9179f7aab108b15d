#!/usr/bin/env bash
# Installs the Debian packages agentfleet needs, only those missing.
#   install-deps.sh build   compilers, CMake, and the C++ libraries
#   install-deps.sh test    the above, plus a JDK and Maven for the test Kafka broker and
#                           python3-aiohttp for the local model-provider server
set -euo pipefail

build_packages=(
  cmake ninja-build g++ pkg-config ccache protobuf-compiler
  librdkafka-dev libprotobuf-dev libabsl-dev libyaml-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libcurl4-openssl-dev libcivetweb-dev
)
# The test Kafka broker (JDK, Maven) and the local model-provider server
# (Debian's python3 with aiohttp, tests/fake_llm/).
test_packages=(openjdk-17-jre-headless maven python3 python3-aiohttp)

wanted=("${build_packages[@]}")
if [ "${1:-build}" = "test" ]; then wanted+=("${test_packages[@]}"); fi

missing=()
for p in "${wanted[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "installed" ] || missing+=("$p")
done
# A JDK and Maven that came from elsewhere (e.g. a preinstalled toolchain) will do.
if command -v java >/dev/null && command -v mvn >/dev/null; then
  kept=()
  for p in "${missing[@]}"; do
    case "$p" in openjdk-17-jre-headless|maven) ;; *) kept+=("$p") ;; esac
  done
  missing=("${kept[@]+"${kept[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

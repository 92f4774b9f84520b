#!/usr/bin/env bash
# deploy/check.sh — checks of everything under deploy/ (and the images
# workflow), with no cluster and no Docker engine. Part of `make test`
# (make deploy-check). The tools are pinned and cached under
# $STACK_CACHE_DIR/tools by deploy/local/tools.sh (make deps); a missing tool
# is a failure, never a skip.
#
#   - YAML and JSON parse; the dashboards: unique uids and panel ids, panels
#     inside the grid and not overlapping, what grafana/dashboards.py writes;
#   - the five service charts carry identical shared templates;
#   - helm lint --strict and helm template of every chart (the five and the
#     umbrella deploy/helm/tributary, after `helm dependency build` of its
#     file:// dependencies), with defaults and with production-like values
#     (helm/ci/*.yaml); every rendered manifest validated by kubeconform
#     -strict against the JSON schemas of a pinned Kubernetes version plus
#     KEDA's ScaledObject and the ServiceMonitor CRD; values the charts must
#     refuse are refused;
#   - promtool check rules / test rules on prometheus/alerts.yaml; every
#     metric the dashboards and rules name is a tributary_ one or listed in
#     prometheus/external-metrics.txt (tests/integration/metrics_names.sh
#     checks the tributary_ ones against the running services);
#   - compose/compose.yaml parses, names the whole system, and its five
#     services use the charts' ports and health paths;
#   - .github/workflows/images.yml parses and passes actionlint;
#   - the Dockerfile's runtime packages cover every library ldd names for
#     each built binary (build/bin, or $TRIBUTARY_BUILD/bin).
set -euo pipefail
cd "$(dirname "$0")"
DEPLOY=$PWD
REPO=$(cd .. && pwd)
BUILD_DIR=${TRIBUTARY_BUILD:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$REPO/$BUILD_DIR ;; esac

fail=0
say() { printf 'deploy/check: %s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; }
t0=$SECONDS

tools_env=$(local/tools.sh env) || { say "FAILED: tools missing"; exit 1; }
eval "$tools_env"

work=$(mktemp -d "${TMPDIR:-/tmp}/tributary-deploy-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

CHARTS=(svc-ingest svc-validator svc-cache-feeder svc-persister svc-recon)
SHARED=(_helpers.tpl deployment.yaml service.yaml configmap.yaml pdb.yaml hpa.yaml
        scaledobject.yaml servicemonitor.yaml)

# ---- YAML and JSON ---------------------------------------------------------
python3 - <<'PY' || fail=1
import glob, json, sys
import yaml
ok = True
def no(msg):
    global ok
    print("deploy/check: FAIL: " + msg); ok = False
files = sorted(glob.glob("helm/*/Chart.yaml") + glob.glob("helm/*/values.yaml") +
               glob.glob("helm/ci/*.yaml") + glob.glob("prometheus/*.y*ml") +
               ["compose/compose.yaml", "../.github/workflows/images.yml"])
for f in files:
    try:
        list(yaml.safe_load_all(open(f)))
    except Exception as e:
        no("%s: %s" % (f, e))
for f in glob.glob("helm/*/Chart.yaml"):
    c = yaml.safe_load(open(f))
    for k, v in (("apiVersion", "v2"), ("version", "0.1.0"), ("appVersion", "0.1.0")):
        if str(c.get(k)) != v:
            no("%s: %s is %r, want %r" % (f, k, c.get(k), v))
boards = sorted(glob.glob("grafana/*.json"))
uids = set()
for f in boards:
    try:
        d = json.load(open(f))
    except Exception as e:
        no("%s: %s" % (f, e)); continue
    if d.get("uid") in uids:
        no("%s: uid %s used twice" % (f, d.get("uid")))
    uids.add(d.get("uid"))
    ids, cells = set(), set()
    for p in d.get("panels", []):
        if p["id"] in ids:
            no("%s: panel id %s twice" % (f, p["id"]))
        ids.add(p["id"])
        if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
            no("%s: %s has no query" % (f, p["title"]))
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            no("%s: %s wider than the grid" % (f, p["title"]))
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    no("%s: %s overlaps another panel" % (f, p["title"]))
                cells.add((x, y))
want = {"tributary-operational", "tributary-performance", "tributary-errors"}
if not want <= uids:
    no("dashboards missing: %s (seed 002's three views)" % sorted(want - uids))
print("deploy/check: %d YAML files and %d dashboards parse" % (len(files), len(boards)))
sys.exit(0 if ok else 1)
PY
python3 grafana/dashboards.py --check || bad "grafana/*.json differ from grafana/dashboards.py (run it)"

# ---- the charts share their templates --------------------------------------
for c in "${CHARTS[@]:1}"; do
    for t in "${SHARED[@]}"; do
        cmp -s "helm/${CHARTS[0]}/templates/$t" "helm/$c/templates/$t" ||
            bad "helm/$c/templates/$t differs from helm/${CHARTS[0]}/templates/$t"
    done
done
say "shared templates identical across ${#CHARTS[@]} charts"

# ---- helm + kubeconform ----------------------------------------------------
# The helm runs are independent: up to 4 at a time (each writes its own
# output; a failure leaves a .fail file with the reason).
jobs_wait() { while [ "$(jobs -rp | wc -l)" -ge 4 ]; do wait -n || true; done; }
helm_t() { # NAME OUT CHART ARGS...: helm template into OUT (a file)
    local name=$1 out=$2 chart=$3
    shift 3
    jobs_wait
    { "$TB_HELM" template tb "$chart" --kube-version "$TB_K8S_VERSION" "$@" >"$out" 2>"$out.err" ||
        printf 'helm template %s: %s\n' "$name" "$(cat "$out.err")" >"$out.fail"; } &
}
refuse() { # WHAT WANT-IN-ERROR CHART ARGS...: helm template must fail saying WANT
    local what=$1 want=$2 chart=$3 n
    shift 3
    n=$work/refuse/$(printf '%s' "$what" | tr -c 'A-Za-z0-9' _)
    jobs_wait
    { if "$TB_HELM" template tb "$chart" --kube-version "$TB_K8S_VERSION" "$@" >/dev/null 2>"$n.err"; then
          echo "$what was accepted" >"$n.fail"
      elif ! grep -q -- "$want" "$n.err"; then
          echo "$what: refused, but not with '$want': $(cat "$n.err")" >"$n.fail"
      fi; } &
}
mkdir -p "$work/out" "$work/refuse" "$work/lint"
# The umbrella's file:// dependencies, built in a copy (nothing written to
# the tree), without any repository or network access.
cp -r helm "$work/helm"
"$TB_HELM" dependency build --skip-refresh "$work/helm/tributary" >"$work/dep.log" 2>&1 ||
    bad "helm dependency build helm/tributary: $(cat "$work/dep.log")"
for c in "${CHARTS[@]}" tributary; do
    jobs_wait
    { "$TB_HELM" lint --strict "$work/helm/$c" >"$work/lint/$c.log" 2>&1 ||
        echo "helm lint --strict helm/$c: $(cat "$work/lint/$c.log")" >"$work/lint/$c.fail"; } &
done
for c in "${CHARTS[@]}"; do
    helm_t "$c (defaults)" "$work/out/$c-defaults.yaml" "helm/$c"
done
for c in svc-validator svc-cache-feeder svc-persister svc-recon; do
    helm_t "$c (production, KEDA)" "$work/out/$c-prod.yaml" "helm/$c" -f helm/ci/production.yaml
    helm_t "$c (production, HPA)" "$work/out/$c-hpa.yaml" "helm/$c" -f helm/ci/production.yaml -f helm/ci/production-hpa.yaml
done
helm_t "svc-ingest (production)" "$work/out/svc-ingest-prod.yaml" helm/svc-ingest -f helm/ci/production-ingest.yaml
helm_t "svc-ingest spool.type=pvc" "$work/out/svc-ingest-pvc.yaml" helm/svc-ingest --set spool.type=pvc
helm_t "svc-cache-feeder redisTls (stunnel sidecar)" "$work/out/svc-cache-feeder-redistls.yaml" helm/svc-cache-feeder \
    --set redisTls.enabled=true --set redisTls.connect=redis-tls.data:6380 --set redisTls.caSecretName=redis-ca \
    --set redisTls.image.repository=registry.example/stunnel --set redisTls.image.tag=5.68 \
    --set 'config.redis\.host=127.0.0.1' --set 'config.redis\.port=6380'
helm_t "tributary (defaults)" "$work/out/tributary-defaults.yaml" "$work/helm/tributary"
helm_t "tributary (production)" "$work/out/tributary-prod.yaml" "$work/helm/tributary" -f helm/ci/production-umbrella.yaml

# The checks in _helpers.tpl must refuse these.
refuse "a grace period shorter than shutdown.grace.ms" "must be longer" helm/svc-validator --set terminationGracePeriodSeconds=30
refuse "a password in config:" "looks like a secret" helm/svc-cache-feeder --set 'config.redis\.password=x'
refuse "maxReplicas above the partitions" "above autoscaling.partitions" helm/svc-persister \
    --set autoscaling.enabled=true --set autoscaling.maxReplicas=12 --set autoscaling.partitions=6
refuse "maxReplicas above the partitions (KEDA)" "above autoscaling.partitions" helm/svc-validator \
    -f helm/ci/production.yaml --set autoscaling.partitions=6
refuse "KEDA for svc-ingest (no consumer group)" "no consumer group" helm/svc-ingest \
    --set autoscaling.enabled=true --set autoscaling.keda.enabled=true
refuse "redisTls without redis.host pointing at the sidecar" "speaks plaintext to its stunnel sidecar" helm/svc-cache-feeder \
    --set redisTls.enabled=true --set redisTls.connect=redis-tls.data:6380 --set redisTls.caSecretName=redis-ca \
    --set redisTls.image.repository=registry.example/stunnel --set redisTls.image.tag=5.68
refuse "a mongodb.uri with credentials in config:" "holds credentials" helm/svc-persister \
    --set 'config.mongodb\.uri=mongodb://u:p@h/'
wait
for f in "$work"/lint/*.fail "$work"/out/*.fail "$work"/refuse/*.fail; do
    [ -e "$f" ] && bad "$(cat "$f")"
done
rm -f "$work"/out/*.fail

# What the renders must contain: KEDA xor HPA, the umbrella's shared values.
grep -q '^kind: ScaledObject' "$work/out/svc-validator-prod.yaml" || bad "no ScaledObject with autoscaling.keda.enabled"
grep -q '^kind: HorizontalPodAutoscaler' "$work/out/svc-validator-prod.yaml" && bad "an HPA beside the ScaledObject"
grep -q '^kind: HorizontalPodAutoscaler' "$work/out/svc-validator-hpa.yaml" || bad "no HPA fallback with KEDA off"
grep -q '^kind: ScaledObject' "$work/out/svc-validator-hpa.yaml" && bad "a ScaledObject with KEDA off"
grep -q '^kind: ServiceMonitor' "$work/out/svc-recon-prod.yaml" || bad "no ServiceMonitor"
n=$(grep -c '^kind: Deployment' "$work/out/tributary-prod.yaml" || true)
[ "$n" -eq 5 ] || bad "the umbrella rendered $n Deployments, want 5"
n=$(grep -c 'kafka.bootstrap.servers = kafka-0.kafka:9092' "$work/out/tributary-prod.yaml" || true)
[ "$n" -eq 5 ] || bad "global.tributary.kafka reached $n of 5 services"
n=$(grep -c 'pg.conninfo = host=pg-rw.data' "$work/out/tributary-prod.yaml" || true)
[ "$n" -eq 2 ] || bad "global.tributary.postgres reached $n services, want 2 (persister, recon)"
n=$(grep -c 'name: TB_REDIS_PASSWORD_FILE' "$work/out/tributary-prod.yaml" || true)
[ "$n" -eq 2 ] || bad "the global redis.password secret reached $n services, want 2 (validator, cache-feeder)"

f=$work/out/svc-cache-feeder-redistls.yaml
grep -q '^        - name: stunnel$' "$f" && grep -q 'checkHost = redis-tls.data$' "$f" &&
    grep -q 'redis.host = 127.0.0.1$' "$f" && grep -q 'secretName: redis-ca$' "$f" ||
    bad "redisTls: no stunnel sidecar (with its CA Secret and checkHost) in $f"
grep -q 'name: stunnel$' "$work/out/svc-cache-feeder-defaults.yaml" && bad "a stunnel sidecar with redisTls off"
"$TB_KUBECONFORM" -strict -summary -output text \
    -kubernetes-version "$TB_K8S_VERSION" \
    -schema-location "$TB_K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$work/out"/*.yaml >"$work/kc.log" 2>&1 || { bad "kubeconform:"; cat "$work/kc.log"; }
# The schemas are strict: a misspelt field and a KEDA trigger without its
# type must fail (so a clean run above means something).
cat >"$work/strict-selftest.yaml" <<'EOF2'
apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ports: [{port: 80, targetPortt: 8080}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: x}
  triggers: [{metadata: {topic: t}}]
EOF2
n=$("$TB_KUBECONFORM" -strict -summary -output text -kubernetes-version "$TB_K8S_VERSION" \
    -schema-location "$TB_K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$work/strict-selftest.yaml" 2>&1 | grep -c ' is invalid: ' || true)
[ "$n" -eq 2 ] || bad "kubeconform self-test: $n of 2 broken manifests refused (schemas not strict?)"
say "helm: $(ls "$work/out"/*.yaml | wc -l) renders of 6 charts; kubeconform (Kubernetes $TB_K8S_VERSION, strict): $(tail -1 "$work/kc.log")"

# ---- promtool and metric names ----------------------------------------------
"$TB_PROMTOOL" check rules prometheus/alerts.yaml >"$work/p.log" 2>&1 || { bad "promtool check rules"; cat "$work/p.log"; }
"$TB_PROMTOOL" test rules prometheus/alerts_test.yaml >"$work/p.log" 2>&1 || { bad "promtool test rules"; cat "$work/p.log"; }
for a in TributaryConsumerLagHigh TributaryErrorRateHigh TributaryLatencyP95High \
         KafkaBrokerDiskAbove80Percent TributaryReconBatchUnclean; do
    grep -q "alertname: $a\$" prometheus/alerts_test.yaml || bad "alerts_test.yaml does not test $a"
done
say "promtool: rules checked and unit-tested"
python3 metric_names.py check-static || bad "metric names (prometheus/external-metrics.txt)"

# ---- compose ---------------------------------------------------------------
python3 - <<'PY' || fail=1
import re, sys, yaml
ok = True
def no(msg):
    global ok
    print("deploy/check: FAIL: compose/compose.yaml: " + msg); ok = False
c = yaml.safe_load(open("compose/compose.yaml"))
svcs = c.get("services", {})
need = ["kafka", "registry", "redis", "postgres", "ferretdb", "prometheus", "grafana",
        "svc-ingest", "svc-validator", "svc-cache-feeder", "svc-persister", "svc-recon"]
for n in need:
    if n not in svcs:
        no("no service %s" % n)
if svcs.get("registry", {}).get("image") != "apicurio/apicurio-registry:3.3.3":
    no("registry is not apicurio/apicurio-registry:3.3.3")
for n in need[7:]:
    s = svcs.get(n, {})
    v = yaml.safe_load(open("helm/%s/values.yaml" % n))
    port = int(v["config"]["http.port"])
    b = s.get("build", {})
    if b.get("dockerfile") != "deploy/docker/Dockerfile" or b.get("args", {}).get("SERVICE") != n:
        no("%s: not built from deploy/docker/Dockerfile with SERVICE=%s" % (n, n))
    ports = [str(p) for p in s.get("ports", [])]
    if not any(p.split(":")[-1] == str(port) for p in ports):
        no("%s: publishes %s, the chart's http.port is %d" % (n, ports, port))
    props = None
    for cf in s.get("configs", []):
        src = c.get("configs", {}).get(cf["source"], {})
        props = src.get("content")
    if props is None:
        no("%s: no tributary.properties config" % n); continue
    kv = dict(re.findall(r"^\s*([\w.\-]+)\s*=\s*(.*?)\s*$", props, re.M))
    if kv.get("http.port") != str(port):
        no("%s: http.port %s, the chart's is %d" % (n, kv.get("http.port"), port))
    for k in kv:
        if k not in v["config"] and not k.startswith("kafka."):
            no("%s: key %s is not in the chart's config: (a key the chart does not know)" % (n, k))
    hc = " ".join(s.get("healthcheck", {}).get("test", []))
    if "http://127.0.0.1:%d/healthz" % port not in hc:
        no("%s: healthcheck %r is not GET /healthz on %d (the chart's liveness probe)" % (n, hc, port))
    # The chart's probes: /healthz and /readyz on the http port.
    dep = open("helm/%s/templates/deployment.yaml" % n).read()
    for path in ("/healthz", "/readyz"):
        if "path: %s" % path not in dep:
            no("%s: the chart has no %s probe" % (n, path))
prom = c.get("configs", {}).get("prometheus.yml", {}).get("content", "")
for n in need[7:]:
    v = yaml.safe_load(open("helm/%s/values.yaml" % n))
    if "%s:%s" % (n, v["config"]["http.port"]) not in prom:
        no("prometheus.yml does not scrape %s:%s" % (n, v["config"]["http.port"]))
print("deploy/check: compose: %d services; the five match the charts' ports and health paths" % len(svcs))
sys.exit(0 if ok else 1)
PY

# ---- the images workflow -----------------------------------------------------
(cd "$REPO" && "$TB_ACTIONLINT" -no-color .github/workflows/images.yml) >"$work/al.log" 2>&1 ||
    { bad "actionlint .github/workflows/images.yml"; cat "$work/al.log"; }
python3 - <<'PY' || fail=1
import sys, yaml
w = yaml.safe_load(open("../.github/workflows/images.yml"))
ok = True
jobs = w.get("jobs", {})
on = w.get(True, w.get("on", {}))  # YAML 1.1 reads the key `on` as true
m = jobs.get("image", {}).get("strategy", {}).get("matrix", {}).get("service", [])
if sorted(m) != sorted(["svc-ingest", "svc-validator", "svc-cache-feeder", "svc-persister", "svc-recon"]):
    print("deploy/check: FAIL: images.yml: the matrix is %r, want the five services" % m); ok = False
text = open("../.github/workflows/images.yml").read()
for want in ("deploy/docker/Dockerfile", "make test", "refs/tags/"):
    if want not in text:
        print("deploy/check: FAIL: images.yml does not mention %s" % want); ok = False
if "tags" not in (on.get("push") or {}):
    print("deploy/check: FAIL: images.yml does not run on tags"); ok = False
print("deploy/check: images.yml: parses, actionlint clean, matrix of %d services" % len(m))
sys.exit(0 if ok else 1)
PY

# ---- the Dockerfile's runtime packages cover ldd ------------------------------
python3 docker/check_libs.py "$BUILD_DIR/bin" || bad "deploy/docker/Dockerfile runtime packages (docker/check_libs.py)"

say "$((SECONDS - t0)) s"
[ "$fail" -eq 0 ] && say "ok" || say "FAILED"
exit "$fail"

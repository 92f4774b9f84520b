#!/usr/bin/env bash
# deploy/check.sh — static checks of the deploy/ artifacts (no cluster, no
# Docker engine needed):
#   - every plain YAML file parses, the Grafana dashboard is valid JSON with
#     unique panel ids and no overlapping panels;
#   - the five Helm charts carry identical shared templates;
#   - with helm on PATH: `helm lint --strict` and `helm template` of each
#     chart, with its defaults and with every optional part switched on;
#   - with promtool on PATH: `promtool check rules` and `promtool test rules`.
# A tool that is missing is reported and skipped, never faked.
set -euo pipefail
cd "$(dirname "$0")"

fail=0
say() { printf 'deploy/check: %s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; }

CHARTS=(svc-ingest svc-validator svc-cache-feeder svc-persister svc-recon)
SHARED=(_helpers.tpl deployment.yaml service.yaml configmap.yaml pdb.yaml hpa.yaml)

# ---- YAML and JSON ---------------------------------------------------------
python3 - <<'PY' || fail=1
import glob, json, sys
try:
    import yaml
except ImportError:
    print("deploy/check: FAIL: python3 yaml module missing (pip install pyyaml)"); sys.exit(1)
ok = True
files = sorted(glob.glob("helm/*/Chart.yaml") + glob.glob("helm/*/values.yaml") +
               glob.glob("prometheus/*.y*ml"))
for f in files:
    try:
        list(yaml.safe_load_all(open(f)))
    except Exception as e:
        print("deploy/check: FAIL: %s: %s" % (f, e)); ok = False
for f in glob.glob("helm/*/Chart.yaml"):
    c = yaml.safe_load(open(f))
    for k, v in (("apiVersion", "v2"), ("version", "0.1.0"), ("appVersion", "0.1.0")):
        if str(c.get(k)) != v:
            print("deploy/check: FAIL: %s: %s is %r, want %r" % (f, k, c.get(k), v)); ok = False
for f in glob.glob("grafana/*.json"):
    try:
        d = json.load(open(f))
    except Exception as e:
        print("deploy/check: FAIL: %s: %s" % (f, e)); ok = False; continue
    ids, cells = set(), set()
    for p in d.get("panels", []):
        if p["id"] in ids:
            print("deploy/check: FAIL: %s: panel id %s twice" % (f, p["id"])); ok = False
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            print("deploy/check: FAIL: %s: %s wider than the grid" % (f, p["title"])); ok = False
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    print("deploy/check: FAIL: %s: %s overlaps another panel" % (f, p["title"])); ok = False
                cells.add((x, y))
print("deploy/check: %d YAML files and %d dashboards parse" % (len(files), len(glob.glob("grafana/*.json"))))
sys.exit(0 if ok else 1)
PY

# ---- the charts share their templates --------------------------------------
for c in "${CHARTS[@]:1}"; do
    for t in "${SHARED[@]}"; do
        cmp -s "helm/${CHARTS[0]}/templates/$t" "helm/$c/templates/$t" ||
            bad "helm/$c/templates/$t differs from helm/${CHARTS[0]}/templates/$t"
    done
done
say "shared templates identical across ${#CHARTS[@]} charts"

# ---- helm ------------------------------------------------------------------
if command -v helm >/dev/null 2>&1; then
    full=$(mktemp); trap 'rm -f "$full"' EXIT
    cat > "$full" <<'VALUES'
secrets:
  - key: kafka.sasl.password
    secretName: tributary-kafka
    secretKey: password
autoscaling: {enabled: true, targetMemoryUtilizationPercentage: 80}
podDisruptionBudget: {unhealthyPodEvictionPolicy: AlwaysAllow}
VALUES
    for c in "${CHARTS[@]}"; do
        helm lint --strict "helm/$c" >/dev/null || bad "helm lint helm/$c"
        helm template tb "helm/$c" >/dev/null || bad "helm template helm/$c (defaults)"
        helm template tb "helm/$c" -f "$full" >/dev/null || bad "helm template helm/$c (all options)"
    done
    helm template tb helm/svc-ingest --set spool.type=pvc >/dev/null || bad "helm template svc-ingest spool.type=pvc"
    # The checks in _helpers.tpl must refuse these.
    if helm template tb helm/svc-validator --set terminationGracePeriodSeconds=30 >/dev/null 2>&1; then
        bad "a grace period shorter than shutdown.grace.ms was accepted"
    fi
    if helm template tb helm/svc-cache-feeder --set config.redis\\.password=x >/dev/null 2>&1; then
        bad "a password in config: was accepted"
    fi
    say "helm: lint and template passed for ${#CHARTS[@]} charts"
else
    say "helm not on PATH: lint/template skipped"
fi

# ---- promtool --------------------------------------------------------------
if command -v promtool >/dev/null 2>&1; then
    promtool check rules prometheus/alerts.yaml >/dev/null || bad "promtool check rules"
    promtool test rules prometheus/alerts_test.yaml >/dev/null || bad "promtool test rules"
    say "promtool: rules checked and unit-tested"
else
    say "promtool not on PATH (Debian package prometheus): rule checks skipped"
fi

[ "$fail" -eq 0 ] && say "ok" || say "FAILED"
exit "$fail"

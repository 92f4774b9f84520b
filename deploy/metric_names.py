#!/usr/bin/env python3
"""deploy/metric_names.py — the metric names the dashboards and alert rules use.

    metric_names.py names              every metric family named in
                                       grafana/*.json and prometheus/alerts.yaml
                                       (one a line, with where it is used)
    metric_names.py check-static       each name is a tributary_ metric or is
                                       listed in prometheus/external-metrics.txt
    metric_names.py compare SCRAPE...  every tributary_ name is a family in at
                                       least one of the scraped /metrics texts
                                       (files); exit 1 naming the missing ones

Names are read out of the PromQL expressions: identifiers outside label
matchers, strings, ranges and by/without/on/ignoring lists that are not
functions or keywords. Histogram series (_bucket, _sum, _count) count as
their family when the family is a histogram in the scrape.
"""
import glob
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "le", "atan2",
            # aggregation operators (may stand before by/without, not "(")
            "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
            "quantile", "count_values", "group", "limitk", "limit_ratio"}
LISTERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?'
                   r'|[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?[a-z]*|\S')


def names_in(expr):
    toks = TOKEN.findall(expr)
    out, i, depth_brace, depth_brack = set(), 0, 0, 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if t == "{":
            depth_brace += 1
        elif t == "}":
            depth_brace -= 1
        elif t == "[":
            depth_brack += 1
        elif t == "]":
            depth_brack -= 1
        elif depth_brace or depth_brack or t[0] in "\"'$" or t[0].isdigit():
            pass
        elif re.match(r"[A-Za-z_:]", t):
            if t in LISTERS and nxt == "(":
                # skip the label list
                while i < len(toks) and toks[i] != ")":
                    i += 1
            elif nxt == "(" or t.lower() in KEYWORDS:
                pass
            else:
                out.add(t)
        i += 1
    return out


def exprs():
    """(expr, where) for every PromQL expression in deploy/."""
    for f in sorted(glob.glob(os.path.join(HERE, "grafana", "*.json"))):
        d = json.load(open(f))
        for p in d.get("panels", []):
            for t in p.get("targets", []):
                if t.get("expr"):
                    yield t["expr"], "%s: %s" % (os.path.basename(f), p.get("title"))
        for v in d.get("templating", {}).get("list", []):
            q = v.get("query")
            if isinstance(q, dict):
                q = q.get("query")
            if v.get("type") == "query" and isinstance(q, str):
                m = re.match(r"label_values\((.*),\s*\w+\)\s*$", q)
                yield (m.group(1) if m else q), "%s: variable %s" % (os.path.basename(f), v.get("name"))
    f = os.path.join(HERE, "prometheus", "alerts.yaml")
    for g in yaml.safe_load(open(f))["groups"]:
        for r in g["rules"]:
            yield r["expr"], "alerts.yaml: %s" % (r.get("alert") or r.get("record"))


def used():
    names = {}
    for e, where in exprs():
        for n in names_in(e):
            names.setdefault(n, []).append(where)
    return names


def external():
    out = set()
    for line in open(os.path.join(HERE, "prometheus", "external-metrics.txt")):
        line = line.split("#", 1)[0].strip()
        if line:
            out.add(line.split()[0])
    return out


def families(text):
    """name -> type of each family in a Prometheus text exposition."""
    fam = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            fam[m.group(1)] = m.group(2)
        elif line and not line.startswith("#"):
            fam.setdefault(re.match(r"[^{\s]+", line).group(0), "untyped")
    return fam


def covered(name, fam):
    if name in fam:
        return True
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and fam.get(name[: -len(suf)]) in ("histogram", "summary"):
            return True
    return False


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    names, ext = used(), external()
    if argv[1] == "names":
        for n in sorted(names):
            print("%s\t%s" % (n, "; ".join(sorted(set(names[n])))))
        return 0
    if argv[1] == "check-static":
        bad = sorted(n for n in names if not n.startswith("tributary_") and n not in ext)
        for n in bad:
            print("metric_names: %s (%s) is neither a tributary_ metric nor listed in "
                  "prometheus/external-metrics.txt" % (n, "; ".join(sorted(set(names[n])))))
        unused = sorted(ext - set(names))
        for n in unused:
            print("metric_names: prometheus/external-metrics.txt lists %s, which nothing uses" % n)
        print("metric_names: %d metric names in the dashboards and alert rules, %d external"
              % (len(names), len([n for n in names if n in ext])))
        return 1 if bad or unused else 0
    if argv[1] == "compare":
        fam = {}
        for f in argv[2:]:
            fam.update(families(open(f).read()))
        missing = sorted(n for n in names if n not in ext and not covered(n, fam))
        for n in missing:
            print("metric_names: MISSING %s, used by %s" % (n, "; ".join(sorted(set(names[n])))))
        print("metric_names: %d names used, %d external (not the services'), %d checked against "
              "%d scraped families, %d missing" % (len(names), len([n for n in names if n in ext]),
                                                  len([n for n in names if n not in ext]),
                                                  len(fam), len(missing)))
        return 1 if missing else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

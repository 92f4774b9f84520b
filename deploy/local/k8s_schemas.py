#!/usr/bin/env python3
"""deploy/local/k8s_schemas.py — Kubernetes JSON schemas for kubeconform.

Reads the OpenAPI v2 spec of a Kubernetes release (api/openapi-spec/
swagger.json of the Go module k8s.io/kubernetes) and CustomResourceDefinition
YAML files, and writes one standalone, strict JSON schema per kind in
kubeconform's file layout:

    <out>/<kind><kindSuffix>.json     e.g. deployment-apps-v1.json,
                                      service-v1.json, scaledobject-keda-v1alpha1.json

matching kubeconform's -schema-location '<out>/{{.ResourceKind}}{{.KindSuffix}}.json'
(KindSuffix: "-<first part of the group>-<version>", or "-<version>" for the
core group). What yannh/kubernetes-json-schema's openapi2jsonschema does for
its "-standalone-strict" folders, done here:

  - every $ref is inlined into the kind's own "definitions" (only the
    definitions the kind reaches), so each file stands alone;
  - strict: an object with "properties" and no "additionalProperties" gets
    additionalProperties: false, so an unknown or misspelt field fails;
  - IntOrString accepts a string or an integer, Quantity a string or a
    number (the spec says only "string" with a format);
  - a field that is not required may be null (the API server accepts null
    for an optional field).

CRDs: each served version's openAPIV3Schema, with
x-kubernetes-int-or-string as string-or-integer, and strict objects except
where x-kubernetes-preserve-unknown-fields allows anything.
"""
import argparse
import copy
import json
import os
import sys

import yaml

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def kind_suffix(group, version):
    if not group:
        return "-" + version.lower()
    return "-%s-%s" % (group.split(".")[0].lower(), version.lower())


def allow_null(schema):
    t = schema.get("type")
    if isinstance(t, str):
        schema["type"] = [t, "null"]
    elif isinstance(t, list) and "null" not in t:
        schema["type"] = t + ["null"]
    elif "$ref" in schema:
        ref = schema.pop("$ref")
        schema["oneOf"] = [{"$ref": ref}, {"type": "null"}]


def strictify(schema, crd=False):
    """Walk a schema in place: strict objects, nullable optional fields."""
    if isinstance(schema, list):
        for s in schema:
            strictify(s, crd)
        return
    if not isinstance(schema, dict):
        return
    if crd and schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    props = schema.get("properties")
    if isinstance(props, dict):
        required = set(schema.get("required", []))
        for name, p in props.items():
            strictify(p, crd)
            if name not in required and isinstance(p, dict):
                allow_null(p)
        if ("additionalProperties" not in schema and
                not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), (dict, list)):
            strictify(schema[key], crd)
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            strictify(schema[key], crd)


def refs_of(schema, out):
    if isinstance(schema, dict):
        r = schema.get("$ref")
        if isinstance(r, str):
            out.add(r.split("/")[-1])
        for v in schema.values():
            refs_of(v, out)
    elif isinstance(schema, list):
        for v in schema:
            refs_of(v, out)


def openapi_kinds(path, out):
    spec = json.load(open(path))
    defs = {}
    for name, d in spec["definitions"].items():
        d = copy.deepcopy(d)
        if name == INT_OR_STRING:
            d = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        elif name == QUANTITY:
            d = {"oneOf": [{"type": "string"}, {"type": "number"}]}
        strictify(d)
        defs[name] = d

    def closure(name):
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            found = set()
            refs_of(defs[n], found)
            todo.extend(found - seen)
        return seen

    n = 0
    for name, d in sorted(defs.items()):
        gvks = spec["definitions"][name].get("x-kubernetes-group-version-kind", [])
        for gvk in gvks:
            kind, group, version = gvk["kind"], gvk.get("group", ""), gvk["version"]
            if kind.endswith("List") and "items" in d.get("properties", {}):
                continue
            schema = copy.deepcopy(d)
            reach = closure(name) - {name}
            schema["definitions"] = {r: defs[r] for r in sorted(reach)}
            # The kind's own references to itself (none in practice) and to
            # others resolve inside this file.
            schema["$schema"] = "http://json-schema.org/schema#"
            fname = "%s%s.json" % (kind.lower(), kind_suffix(group, version))
            with open(os.path.join(out, fname), "w") as f:
                json.dump(schema, f, separators=(",", ":"))
            n += 1
    return n


def crd_kinds(path, out):
    n = 0
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        kind, group = spec["names"]["kind"], spec["group"]
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
            strictify(schema, crd=True)
            schema["$schema"] = "http://json-schema.org/schema#"
            fname = "%s%s.json" % (kind.lower(), kind_suffix(group, v["name"]))
            with open(os.path.join(out, fname), "w") as f:
                json.dump(schema, f, separators=(",", ":"))
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--openapi", required=True, help="Kubernetes swagger.json (OpenAPI v2)")
    ap.add_argument("--crd", action="append", default=[], help="CRD YAML file (repeatable)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n = openapi_kinds(a.openapi, a.out)
    m = sum(crd_kinds(c, a.out) for c in a.crd)
    if n == 0 or m < len(a.crd):
        print("k8s_schemas: too few kinds (%d built-in, %d from CRDs)" % (n, m), file=sys.stderr)
        return 1
    print("k8s_schemas: %d built-in kinds, %d CRD kinds in %s" % (n, m, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

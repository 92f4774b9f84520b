#!/usr/bin/env python3
"""deploy/docker/check_libs.py BIN_DIR — the Dockerfile's runtime packages
against what the built binaries load (no Docker engine needed).

For each service binary in BIN_DIR: every library `ldd` names must resolve
(none "not found"), and the Debian package that holds it (`dpkg -S`) must be
installed in that service's image: one of the packages its stages (`runtime`
plus the service's own) install, one of their dependencies (Depends and
Pre-Depends, followed recursively with dpkg-query on this machine, the same
Debian release as the image), or one of BASE, what debian:bookworm-slim
already carries. And the other way round, so the image stays small: every
library package the runtime stage installs is needed by all five binaries,
and every one a service stage adds is needed by that service (TOOLS, the
packages that are no libraries, excepted).
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = ["svc-ingest", "svc-validator", "svc-cache-feeder", "svc-persister", "svc-recon"]
# In debian:bookworm-slim already (Priority required / essential).
BASE = {"libc6", "zlib1g", "libgcc-s1", "libzstd1", "liblzma5", "libselinux1", "libpcre2-8-0",
        "libcap2", "libgmp10", "libcrypt1", "libtinfo6", "libacl1", "libattr1", "libmd0",
        "libbz2-1.0", "libudev1", "libsystemd0", "liblz4-1", "libgcrypt20", "libgpg-error0",
        "libuuid1", "libblkid1", "libmount1", "libsmartcols1", "libdb5.3", "libaudit1",
        "libaudit-common", "libcap-ng0", "libpam0g", "libsemanage2", "libsepol2",
        "libstdc++6", "libdebconfclient0", "libhogweed6", "libnettle8", "libffi8", "libgnutls30",
        "libidn2-0", "libp11-kit0", "libtasn1-6", "libunistring2", "libxxhash0", "libseccomp2",
        "libapt-pkg6.0", "libext2fs2", "libcom-err2", "libss2", "libcrypt1", "tzdata",
        "debconf", "dpkg", "perl-base", "base-files", "libc-bin", "gcc-12-base", "adduser",
        "passwd", "libsemanage-common", "openssl"}
TOOLS = {"ca-certificates", "curl"}  # not libraries: TLS roots, the HEALTHCHECK client
# The sanitizer runtimes of `make asan` binaries: never in an image (the
# images build without SAN), so a sanitizer build is checked without them.
SANITIZER = {"libasan8", "libubsan1", "liblsan0", "libtsan2"}


def stages(path):
    """stage name -> (base stage, [packages apt-get installs])"""
    text = open(path).read().replace("\\\n", " ")
    out, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            cur = m.group(2) or "final"
            out[cur] = (m.group(1), [])
            continue
        if cur and line.upper().startswith("RUN") and "apt-get install" in line:
            for cmd in line.split("&&"):
                if "apt-get install" not in cmd:
                    continue
                words = cmd.split("apt-get install", 1)[1].split()
                out[cur][1].extend(w for w in words if not w.startswith("-"))
    return out


def pkgs_of_stage(st, name):
    pk = []
    while name in st:
        base, p = st[name]
        pk.extend(p)
        name = base
    return pk


def variants(path):
    cands = [path, os.path.realpath(path)]
    for c in list(cands):
        if c.startswith("/lib"):
            cands.append("/usr" + c)
        elif c.startswith("/usr/lib"):
            cands.append(c[4:])
    return cands


def dpkg_owners(paths):
    """path -> Debian package, with one dpkg -S over every path (and its
    /usr-merged spellings)."""
    allc = sorted({c for p in paths for c in variants(p)})
    r = subprocess.run(["dpkg", "-S"] + allc, capture_output=True, text=True)
    found = {}
    for line in r.stdout.splitlines():
        m = re.match(r"([^:]+)(?::\S+)?: (/\S+)$", line)
        if m:
            found[m.group(2)] = m.group(1).split(",")[0].strip()
    out = {}
    for p in paths:
        for c in variants(p):
            if c in found:
                out[p] = found[c]
                break
    return out


_deps = {}


def load_depends():
    """Depends and Pre-Depends of every installed package, one dpkg-query."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\t${Depends}, ${Pre-Depends}\n"],
                       capture_output=True, text=True, check=True)
    for line in r.stdout.splitlines():
        pkg, status, deps = (line.split("\t") + ["", ""])[:3]
        if status != "installed":
            continue
        ds = set()
        for alt in deps.split(","):
            alt = alt.strip()
            if alt:
                ds.add(re.split(r"[\s(:]", alt.split("|")[0].strip())[0])
        _deps[pkg] = ds


def depends(pkg):
    if not _deps:
        load_depends()
    if pkg not in _deps:
        raise SystemExit("check_libs: package %s is not installed here: cannot follow its "
                         "dependencies (make deps installs the -dev packages that pull it)" % pkg)
    return _deps[pkg]


def closure(pkgs):
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        if p not in TOOLS:
            todo.extend(depends(p))
    return seen


def ldd(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("check_libs: ldd %s failed: %s" % (binary, r.stderr.strip()))
    libs, missing = {}, []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if m:
            if m.group(2) == "not":
                missing.append(m.group(1))
            else:
                libs[m.group(1)] = m.group(2)
        else:
            m = re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs[os.path.basename(m.group(1))] = m.group(1)
    return libs, missing


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    bindir = argv[1]
    st = stages(os.path.join(HERE, "Dockerfile"))
    ok = True
    need_all = None
    for svc in SERVICES:
        b = os.path.join(bindir, svc)
        if not os.access(b, os.X_OK):
            print("check_libs: FAIL: %s not built (make all)" % b)
            ok = False
            continue
        if svc not in st:
            print("check_libs: FAIL: the Dockerfile has no stage %s" % svc)
            ok = False
            continue
        listed = pkgs_of_stage(st, svc)
        have = closure(listed) | BASE
        libs, missing = ldd(b)
        for m in missing:
            print("check_libs: FAIL: %s: ldd finds no %s" % (svc, m))
            ok = False
        owners = {}
        owner_of = dpkg_owners(list(libs.values()))
        for so, path in sorted(libs.items()):
            o = owner_of.get(path)
            if not o:
                print("check_libs: FAIL: %s: %s (%s) belongs to no Debian package" % (svc, so, path))
                ok = False
                continue
            if o in SANITIZER:
                print("check_libs: %s: %s is the sanitizer runtime (make asan), not in images"
                      % (svc, so))
                continue
            owners[so] = o
            if o not in have:
                print("check_libs: FAIL: %s needs %s from %s, which its image does not install"
                      % (svc, so, o))
                ok = False
        needed = set(owners.values())
        need_all = needed if need_all is None else need_all & needed
        own = set(st[svc][1]) - TOOLS
        for p in sorted(own - needed):
            print("check_libs: FAIL: stage %s installs %s, which %s does not load" % (svc, p, svc))
            ok = False
        print("check_libs: %s: %d libraries, each from an installed package (%s)"
              % (svc, len(libs), " ".join(sorted(set(listed) - TOOLS))))
    if need_all is not None:
        for p in sorted(set(st.get("runtime", ("", []))[1]) - TOOLS - need_all):
            print("check_libs: FAIL: stage runtime installs %s, which not every service loads: "
                  "move it to the stages that do" % p)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env bash
# deploy/local/deps.sh — install what tributary needs to build, test and run
# its local stack, from Debian's packages (bookworm).
#
# Idempotent and fast when everything is there: asks dpkg first, and runs
# apt-get update + install only for what is missing. Needs root (or sudo).
# Debian's redis-server, postgresql and mariadb-server would start their own
# services on install; they are kept from starting (policy-rc.d) and stopped if running,
# because deploy/local/stack.sh runs its own instances on the same ports.
#
# Env: DEPS_SKIP_OPTIONAL=1  skip the nice-to-have packages (none at the moment).
set -euo pipefail

log() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

REQUIRED_PKGS=(
    build-essential pkg-config
    librdkafka-dev libhiredis-dev libmongoc-dev libbson-dev libcjson-dev
    libavro-dev libcurl4-openssl-dev check libsubunit-dev libmicrohttpd-dev
    libcsv-dev uuid-dev libssl-dev zlib1g-dev libpq-dev libmariadb-dev
    redis-server redis-tools postgresql postgresql-client mariadb-server kcat
    stunnel4
    procps psmisc iproute2 ca-certificates
    chromium chromium-driver
    prometheus
    clang libclang-rt-14-dev
)
# prometheus: for promtool (deploy/check.sh, part of make test, checks and
# unit-tests the alert rules); its service is kept from starting like the
# others. clang + its libFuzzer runtime: the fuzz harnesses of tests/fuzz,
# whose short run is part of make test.
OPTIONAL_PKGS=()

# Minimum Go to build FerretDB v1.x (go.mod says go 1.22).
GO_MIN_MINOR=22

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# go_ok BIN: true when BIN is a Go toolchain >= 1.$GO_MIN_MINOR.
go_ok() {
    local v
    v=$("$1" env GOVERSION 2>/dev/null) || return 1   # e.g. go1.26.8
    v=${v#go}
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%[!0-9]*}
    [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "${minor:-0}" -ge "$GO_MIN_MINOR" ]; }
}

find_go() {
    local g
    for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go/bin/go \
             $(ls -d /usr/lib/go-1.*/bin/go 2>/dev/null | sort -rV); do
        [ -n "$g" ] && [ -x "$g" ] && go_ok "$g" && { echo "$g"; return 0; }
    done
    return 1
}

main() {
    local missing=() p

    for p in "${REQUIRED_PKGS[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    # Java and Maven may come from elsewhere (a JDK in /usr/local, sdkman...).
    if ! command -v mvn >/dev/null 2>&1 || ! mvn -v >/dev/null 2>&1; then
        is_installed maven || missing+=(maven)
    fi
    if ! command -v java >/dev/null 2>&1 || ! java -version >/dev/null 2>&1; then
        is_installed default-jre-headless || missing+=(default-jre-headless)
    fi
    local optional=()
    if [ "${DEPS_SKIP_OPTIONAL:-0}" != 1 ]; then
        for p in "${OPTIONAL_PKGS[@]}"; do
            is_installed "$p" || optional+=("$p")
        done
    fi

    if [ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
        log "all Debian packages present"
    else
        if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
            die "not root and no sudo; missing packages: ${missing[*]} ${optional[*]}
       run as root: apt-get install -y --no-install-recommends ${missing[*]} ${optional[*]}"
        fi
        install_pkgs "${missing[@]}" -- "${optional[@]}"
    fi

    stop_distro_services

    local go
    if ! go=$(find_go); then
        die "no Go >= 1.$GO_MIN_MINOR found (looked at PATH, /usr/local/go/bin, /usr/lib/go-1.*).
       The local stack builds FerretDB from source and needs it; Debian bookworm's
       golang-go is 1.19, too old. Install Go >= 1.$GO_MIN_MINOR at /usr/local/go."
    fi
    log "Go: $go ($("$go" env GOVERSION))"
    log "java: $(java -version 2>&1 | head -1); maven: $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g')"
    log "done"
}

# install_pkgs REQUIRED... -- OPTIONAL...
install_pkgs() {
    local req=() opt=() seen_sep=0 p
    for p in "$@"; do
        if [ "$p" = -- ]; then seen_sep=1; continue; fi
        if [ $seen_sep -eq 0 ]; then req+=("$p"); else opt+=("$p"); fi
    done

    # Keep packages from starting their services during install (our stack
    # runs its own instances); removed again whatever happens.
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\n# written by tributary deploy/local/deps.sh during install\nexit 101\n' |
            "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
        "${SUDO[@]}" chmod 755 "$POLICY_RC"
        POLICY_CREATED=1
        trap remove_policy EXIT
    fi

    export DEBIAN_FRONTEND=noninteractive
    log "apt-get update"
    "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"

    # Optional packages only if this apt knows them.
    local opt_ok=()
    for p in "${opt[@]}"; do
        if apt-cache show "$p" >/dev/null 2>&1; then opt_ok+=("$p")
        else log "optional package $p not available here, skipped"; fi
    done

    if [ ${#req[@]} -gt 0 ]; then
        log "installing: ${req[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${req[@]}" >/dev/null || die "apt-get install failed for: ${req[*]}"
    fi
    if [ ${#opt_ok[@]} -gt 0 ]; then
        log "installing (optional): ${opt_ok[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${opt_ok[@]}" >/dev/null || log "optional install failed (continuing): ${opt_ok[*]}"
    fi

    remove_policy
}

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_CREATED=0
remove_policy() {
    if [ "$POLICY_CREATED" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY_RC"
        POLICY_CREATED=0
    fi
}

# The Debian-packaged services must not hold the ports our own stack uses.
stop_distro_services() {
    if [ -r /run/redis/redis-server.pid ] && kill -0 "$(cat /run/redis/redis-server.pid)" 2>/dev/null; then
        log "stopping Debian's redis-server service (stack.sh runs its own)"
        "${SUDO[@]}" service redis-server stop >/dev/null 2>&1 || true
    fi
    if [ -r /run/mysqld/mysqld.pid ] &&
            kill -0 "$(cat /run/mysqld/mysqld.pid)" 2>/dev/null; then
        log "stopping Debian's mariadb service (stack.sh runs its own)"
        "${SUDO[@]}" service mariadb stop >/dev/null 2>&1 || true
    fi
    if command -v pg_lsclusters >/dev/null 2>&1; then
        local ver name port status rest
        while read -r ver name port status rest; do
            [ "$status" = online ] || continue
            log "stopping Debian's PostgreSQL cluster $ver/$name on port $port (stack.sh runs its own)"
            "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
        done < <(pg_lsclusters -h 2>/dev/null || true)
    fi
}

main "$@"

#!/usr/bin/env bash
# Installs, from Debian's packages, the servers and browsers that the tests start themselves:
# PostgreSQL (tests/services.py), Redis, Chromium and its WebDriver. Idempotent: prints nothing
# and asks no registry when every binary is already there. Starts nothing.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL's server binaries live under /usr/lib/postgresql/VERSION/bin, off PATH on Debian.
have_postgres() {
    have initdb && have pg_ctl && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)

[ ${#missing[@]} -eq 0 ] && exit 0

if ! have apt-get; then
    echo "ensure-services: missing ${missing[*]}, and apt-get is not here to install them" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then
        sudo=(sudo)
    else
        echo "ensure-services: missing ${missing[*]}; run as root or install sudo" >&2
        exit 1
    fi
fi

echo "ensure-services: installing ${missing[*]}" >&2
# Debian's postinst scripts start the packaged services (a PostgreSQL cluster on 5432, Redis on
# 6379); the tests start their own, so forbid that for this install, as container images do.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

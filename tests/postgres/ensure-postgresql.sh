#!/bin/sh
# Install Debian's PostgreSQL server for the cluster-mode tests when it is missing.
# The tests start their own throwaway cluster (initdb + pg_ctl in a temp dir, as a
# non-root user); they only need the server binaries, never a running system service.
# Never fails the build: without root or apt-get the PostgreSQL tests skip and say why.
set -u

found() {
    command -v initdb >/dev/null 2>&1 && return 0
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && return 0
    done
    return 1
}

if found; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgresql: initdb missing and cannot install postgresql (needs root and" \
         "apt-get); the PostgreSQL tests will be skipped" >&2
    exit 0
fi
echo "ensure-postgresql: installing postgresql with apt-get (about 30 s)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }; then
    echo "ensure-postgresql: apt-get could not install postgresql; the PostgreSQL tests" \
         "will be skipped" >&2
fi
exit 0

#!/bin/sh
# Install Debian's Chromium for the dashboard's browser tests when it is missing.
# Playwright's own browser download cannot work here (no host outside the package
# registries is reachable), so the tests drive the system package instead.
# Never fails the build: without root or apt-get the browser tests skip and say why.
set -u
CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM missing and cannot install it (needs root and apt-get);" \
         "the browser tests will be skipped" >&2
    exit 0
fi
echo "ensure-chromium: installing chromium with apt-get (about 30 s)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; then
    echo "ensure-chromium: apt-get could not install chromium; the browser tests will be skipped" >&2
fi
exit 0

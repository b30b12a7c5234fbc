#!/bin/sh
# Prints the interpreter `make` builds the virtualenv with: CPython 3.12 where the machine
# has it, else python3 (3.11 or newer, checked by the Makefile).
# Why 3.12: the zygote's objects are made immortal before the fork (worker/immortal.py,
# PEP 683), so an idle worker stops copying the pages its code only reads: 6.1 MiB private
# per connected idle TLS worker on 3.12.1, 6.7 on 3.13.0, 13.8 on 3.11.7, which has no
# immortal objects (bench/NOTES.md, "Private memory"). PYTHON=... on make's command line wins.
set -u
for candidate in python3.12 python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
        echo "$candidate"; exit 0
    fi
done
# pyenv keeps versions it has not activated out of PATH (its shim then refuses python3.12),
# and a non-interactive shell may not have pyenv on PATH at all: look in its root.
root="${PYENV_ROOT:-}"
if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
[ -n "$root" ] || root="${HOME:-/nonexistent}/.pyenv"
for candidate in $(ls -d "$root"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
        echo "$candidate"; exit 0
    fi
done
echo python3

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
# pyenv keeps versions it has not activated out of PATH (its shim then refuses python3.12).
if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$' | sort -t. -k3 -n -r); do
        candidate="$(pyenv root)/versions/$version/bin/python3.12"
        if [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
    done
fi
echo python3

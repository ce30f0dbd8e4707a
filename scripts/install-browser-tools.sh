#!/usr/bin/env bash
# Installs what the real-browser test needs and the machine lacks: Debian's `chromium`, and Node with npm.
# Each missing piece is installed on its own, because they come from different places on different machines:
# a NodeSource `nodejs` carries its own npm and conflicts with Debian's `npm` package, so asking apt for
# `chromium nodejs npm` together fails there ("held broken packages") even though only chromium is missing.
# Usage: scripts/install-browser-tools.sh [--dry-run]
#   --dry-run   print what would be installed and check it with `apt-get install -s`, installing nothing
set -euo pipefail

dry_run=false
case "${1:-}" in
    --dry-run) dry_run=true ;;
    "") ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

sudo_cmd=()
if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); fi
fi

updated=false
apt_update_once() {
    if ! $updated; then
        "${sudo_cmd[@]}" apt-get update -qq
        updated=true
    fi
}

# Installs packages (one piece: a package and what must come with it), or with --dry-run only checks that apt could (a simulated install).
apt_install() {
    apt_update_once
    if $dry_run; then
        if apt-get install -s -qq "$@" >/dev/null; then
            echo "would install: $* (apt-get install -s $*: ok)"
        else
            echo "error: apt-get could not install $* on this machine" >&2
            return 1
        fi
    else
        echo "installing: $*"
        "${sudo_cmd[@]}" apt-get install -y -qq "$@" >/dev/null
    fi
}

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: present ($(command -v chromium))"
else
    apt_install chromium
fi

if command -v node >/dev/null 2>&1; then
    echo "node: present ($(node --version))"
else
    apt_install nodejs
fi

if command -v npm >/dev/null 2>&1; then
    echo "npm: present ($(npm --version))"
elif ! command -v node >/dev/null 2>&1 && $dry_run; then
    # Debian's nodejs was only simulated above, so simulate Debian's npm together with it.
    apt_install nodejs npm
else
    # Debian's npm works only beside Debian's nodejs; a Node build that lacks npm needs npm from its own source.
    apt_update_once
    if apt-get install -s -qq npm >/dev/null 2>&1; then
        apt_install npm
    else
        node_version=$(dpkg-query -W -f='${Version}' nodejs 2>/dev/null || node --version)
        echo "error: npm is missing and Debian's npm cannot be installed beside this Node ($node_version);" \
            "install npm from the same source as Node" >&2
        exit 1
    fi
fi

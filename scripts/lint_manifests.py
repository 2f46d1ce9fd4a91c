"""Offline checks of the deployment files, run by scripts/lint-deploy inside
its tool venv (.venv-lint/), where kubernetes-validate and cloudcoil's
Prometheus Operator models are installed.

  python scripts/lint_manifests.py compose docker-compose.yml Dockerfile
  python scripts/lint_manifests.py kubernetes deploy/kubernetes/*.yaml

`compose` adds to the Compose-specification schema check what `docker
compose config` would catch and a schema cannot: every build target is a
stage of the Dockerfile, the services built without one get the runtime
stage (the last), every bind-mounted path exists, and third-party images are
pinned to a version (no `:latest`, no bare name).

`kubernetes` validates every document of every manifest, strictly (unknown
fields are errors): core kinds against the Kubernetes OpenAPI schemas that
kubernetes-validate ships, at the oldest version the sidecar supports (1.29,
native sidecars) and at the newest it knows; Prometheus Operator kinds
(monitoring.coreos.com) against the operator's CRD types. A kind neither
knows is an error, so nothing passes unchecked.
"""

import re
import sys
from pathlib import Path

import yaml

# Native sidecars (initContainers with restartPolicy: Always) are on by
# default from Kubernetes 1.29.
OLDEST_KUBERNETES = "1.29.0"


def fail(errors: list[str]) -> int:
    for e in errors:
        print(f"ERROR {e}")
    return 1 if errors else 0


def dockerfile_stages(path: Path) -> list[str]:
    """The stage names of a Dockerfile, in order (unnamed stages as '')."""
    stages = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", line, re.IGNORECASE)
        if m:
            stages.append(m.group(1) or "")
    return stages


def check_compose(compose_path: Path, dockerfile: Path) -> int:
    errors = []
    compose = yaml.safe_load(compose_path.read_text())
    stages = dockerfile_stages(dockerfile)
    if not stages or stages[-1] != "runtime":
        errors.append(f"{dockerfile}: the last stage must be `runtime` (the default image), got {stages}")
    for name, service in compose.get("services", {}).items():
        build = service.get("build")
        if build is not None:
            target = build.get("target") if isinstance(build, dict) else None
            if target is not None and target not in stages:
                errors.append(f"{compose_path}: service {name}: build target {target!r} is not a stage of {dockerfile} {stages}")
            if "image" in service:
                errors.append(f"{compose_path}: service {name}: both build and image")
        else:
            image = service.get("image", "")
            last = image.rsplit("/", 1)[-1]
            if ":" not in last or last.endswith(":latest"):
                errors.append(f"{compose_path}: service {name}: image {image!r} is not pinned to a version")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")) and not (compose_path.parent / source).exists():
                errors.append(f"{compose_path}: service {name}: mounts {source}, which does not exist")
    if not errors:
        print(f"ok -- {compose_path}: build targets, bind mounts and image pins")
    return fail(errors)


def check_kubernetes(paths: list[Path]) -> int:
    import kubernetes_validate
    from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

    versions = [OLDEST_KUBERNETES, kubernetes_validate.latest_version()]
    errors = []
    checked = 0
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            checked += 1
            kind, api = doc.get("kind"), doc.get("apiVersion", "")
            name = f"{path}: {kind} {doc.get('metadata', {}).get('name')}"
            if api.startswith("monitoring.coreos.com/"):
                model = getattr(monitoring_v1, kind or "", None) if api == "monitoring.coreos.com/v1" else None
                if model is None:
                    errors.append(f"{name}: no schema for {api} {kind}")
                    continue
                try:
                    parsed = model.model_validate(doc)
                except Exception as e:  # pydantic's ValidationError, with the path
                    errors.append(f"{name}: {e}")
                    continue
                # The models ignore unknown fields: a field that does not
                # come back is one the operator would not know either.
                back = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
                if back != doc:
                    errors.append(f"{name}: fields unknown to the {kind} CRD: {diff(doc, back)}")
                    continue
                print(f"ok -- {name} (Prometheus Operator CRD)")
            else:
                for version in versions:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except Exception as e:  # ValidationError, SchemaNotFoundError, ...
                        errors.append(f"{name} (Kubernetes {version}): {getattr(e, 'message', e)}")
                        break
                else:
                    print(f"ok -- {name} (Kubernetes {' and '.join(versions)}, strict)")
    if checked == 0:
        errors.append("no Kubernetes documents found")
    return fail(errors)


def diff(sent, back, where="") -> list[str]:
    """The paths present in `sent` and missing from `back`."""
    if isinstance(sent, dict) and isinstance(back, dict):
        return [p for k, v in sent.items() for p in (diff(v, back[k], f"{where}.{k}") if k in back else [f"{where}.{k}"])]
    if isinstance(sent, list) and isinstance(back, list) and len(sent) == len(back):
        return [p for i, (a, b) in enumerate(zip(sent, back)) for p in diff(a, b, f"{where}[{i}]")]
    return [] if sent == back else [f"{where} (value changed)"]


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "compose":
        return check_compose(Path(argv[1]), Path(argv[2]))
    if len(argv) >= 2 and argv[0] == "kubernetes":
        return check_kubernetes([Path(p) for p in argv[1:]])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

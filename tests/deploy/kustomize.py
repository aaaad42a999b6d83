"""A small kustomize renderer, for checking the manifests where kubectl is not installed.

It does what deploy/k8s uses and nothing more: `resources` (files and directories with their own
kustomization.yaml), `namespace`, `labels` (metadata only, as with includeSelectors: false),
`images` (newName, newTag, digest), `replicas`, and `patches` given by `path` as strategic merge
patches (maps merged; containers merged by name, topology spread constraints by topologyKey,
other lists replaced). Anything else in a kustomization is refused, so that the checks never pass
on manifests this renderer misread.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

Doc = dict[str, Any]
KNOWN = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
MERGE_KEYS = {"containers": "name", "initContainers": "name", "topologySpreadConstraints": "topologyKey"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def load_all(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Doc]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer does not know: {unknown}")
    docs: list[Doc] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        docs += render(path) if path.is_dir() else load_all(path)
    for patch in spec.get("patches", []):
        for change in load_all(directory / patch["path"]):
            merge(find(docs, change["kind"], change["metadata"]["name"]), change)
    for replicas in spec.get("replicas", []):
        find(docs, "Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    for doc in docs:
        metadata = doc.setdefault("metadata", {})
        if "namespace" in spec and doc["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = spec["namespace"]
        for label in spec.get("labels", []):
            metadata.setdefault("labels", {}).update(label["pairs"])
        for image in spec.get("images", []):
            retag(doc, image)
    return docs


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KeyError(f"no {kind} {name} to patch")


def merge(target: Any, change: Any, field: str = "") -> Any:
    if isinstance(target, dict) and isinstance(change, dict):
        for key, value in change.items():
            target[key] = merge(target[key], value, key) if key in target else copy.deepcopy(value)
        return target
    if isinstance(target, list) and isinstance(change, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged = {item[key]: item for item in target}
        for item in change:
            merged[item[key]] = merge(merged[item[key]], item) if item[key] in merged else item
        return list(merged.values())
    return copy.deepcopy(change)


def pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: Doc = doc["spec"]["template"]["spec"]
        return spec
    return None


def retag(doc: Doc, image: Doc) -> None:
    spec = pod_spec(doc)
    if spec is None:
        return
    for container in spec.get("containers", []):
        name = container["image"].split("@")[0].rsplit(":", 1)[0]
        if name != image["name"]:
            continue
        new = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{new}@{image['digest']}"
        else:
            container["image"] = f"{new}:{image.get('newTag', 'latest')}"

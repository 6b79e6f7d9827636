"""Writing a kubeconfig that points kubectl at a Flotilla master."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def render_kubeconfig(server: str, *, cluster: str = "flotilla", user: str = "admin") -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server}}],
        "users": [{"name": user, "user": {}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user, "namespace": "default"}}],
        "current-context": cluster,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, server: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_kubeconfig(server))
    os.chmod(tmp, 0o600)
    tmp.replace(path)

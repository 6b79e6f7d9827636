"""Shared builders for the node agent's pod tests (unit and e2e)."""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf import json_format

from protos.core.v1 import core_pb2


def make_pod(name: str = "p", *, namespace: str = "default", node: str = "node-1", containers: list[dict[str, Any]]
             | None = None, **spec: Any) -> core_pb2.Pod:
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {"nodeName": node, "containers": containers or [
            {"name": "app", "image": "flotilla/busybox:test", "command": ["sleep", "3600"]}], **spec},
    }
    pod = core_pb2.Pod()
    json_format.ParseDict(body, pod)
    return pod

"""configMap / secret / emptyDir / hostPath volumes on disk (tmp dirs), kubelet's atomic layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node_agent.pods.env import ConfigError
from node_agent.pods.volumes import setup_volumes, teardown_volumes, write_atomic
from protos.core.v1 import core_pb2
from tests.unit.pod_fixtures import make_pod


def test_atomic_layout_and_update(tmp_path: Path) -> None:
    target = tmp_path / "v"
    assert write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    data = target / "..data"
    assert data.is_symlink() and os.readlink(data).startswith("..")
    assert os.readlink(target / "a") == "..data/a" and (target / "a").read_bytes() == b"1"
    assert (target / "dir" / "b").read_bytes() == b"2"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600
    first = os.readlink(data)
    assert not write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})  # unchanged: no swap
    assert write_atomic(target, {"a": (b"new", 0o644)})
    assert os.readlink(data) != first and not (target / first).exists()
    assert (target / "a").read_bytes() == b"new"
    assert not (target / "dir").exists()  # a key that went away goes away


def test_pod_volumes(tmp_path: Path) -> None:
    host = tmp_path / "host" / "made"
    pod = make_pod(volumes=[
        {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/file.txt"}]}},
        {"name": "all", "configMap": {"name": "cm", "defaultMode": 0o600}},
        {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
    ])
    cm = core_pb2.ConfigMap(data={"k": "v", "j": "w"})
    sec = core_pb2.Secret(data={"pw": b"x"})
    root = str(tmp_path / "root")
    paths = setup_volumes(pod, root, config_maps={"cm": cm}, secrets={"s": sec})
    uid = pod.metadata.uid
    assert paths["cfg"] == f"{root}/pods/{uid}/volumes/configmap/cfg"
    assert Path(paths["cfg"], "sub/file.txt").read_text() == "v"
    assert sorted(p.name for p in Path(paths["all"]).iterdir() if not p.name.startswith("..")) == ["j", "k"]
    assert Path(paths["all"], "..data", "k").stat().st_mode & 0o777 == 0o600
    assert Path(paths["sec"], "pw").read_bytes() == b"x"
    assert Path(paths["scratch"]).is_dir() and host.is_dir() and paths["h"] == str(host)
    cm.data["k"] = "changed"
    setup_volumes(pod, root, config_maps={"cm": cm}, secrets={"s": sec})
    assert Path(paths["cfg"], "sub/file.txt").read_text() == "changed"
    with pytest.raises(ConfigError, match='configmap "cm" not found'):
        setup_volumes(pod, root, config_maps={}, secrets={"s": sec})
    teardown_volumes(root, uid)
    assert not Path(root, "pods", uid).exists()

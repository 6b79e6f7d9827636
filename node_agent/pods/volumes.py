"""Pod volumes on the node's disk: emptyDir, hostPath, configMap and secret.

Owns: the layout `<root>/pods/<uid>/volumes/<plugin>/<volume name>` (kubelet's,
with plugin names `empty-dir`, `configmap`, `secret`), what files a configMap or
secret volume holds (`plan_projection`, pure: keys or items, modes, optional),
and writing them like kubelet's AtomicWriter: the files live in a timestamped
`..<ts>` directory, `..data` is a symlink to it, each top-level name a symlink
through `..data`; an update writes a new directory and swaps `..data` with one
rename, so a reader inside the container never sees half an update.
Must not: fetch objects (the worker passes them in) or decide when to refresh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from node_agent.pods.env import ConfigError

DEFAULT_MODE = 0o644
DATA = "..data"


def pod_dir(root: str, uid: str) -> Path:
    return Path(root) / "pods" / uid


def plan_projection(items: Any, data: Mapping[str, bytes] | None, *, default_mode: int | None, optional: bool,
                    kind: str, name: str) -> dict[str, tuple[bytes, int]]:
    """relative path -> (content, mode) for one configMap or secret volume (pure)."""
    mode = DEFAULT_MODE if default_mode is None else default_mode
    if data is None:
        if optional:
            return {}
        raise ConfigError(f'{kind} "{name}" not found')
    out: dict[str, tuple[bytes, int]] = {}
    if not items:
        for key, value in data.items():
            out[key] = (value, mode)
        return out
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise ConfigError(f"configmap references non-existent config key: {item.key}" if kind == "configmap"
                              else f"references non-existent secret key: {item.key}")
        if item.path.startswith("/") or ".." in item.path.split("/"):
            raise ConfigError(f"invalid item path {item.path!r}")
        out[item.path] = (data[item.key], item.mode if item.HasField("mode") else mode)
    return out


def config_map_bytes(cm: Any) -> dict[str, bytes] | None:
    if cm is None:
        return None
    out = {k: v.encode() for k, v in cm.data.items()}
    out.update(dict(cm.binary_data.items()))
    return out


def _current_files(target: Path) -> dict[str, tuple[bytes, int]] | None:
    data = target / DATA
    if not data.is_symlink():
        return None
    base = target / os.readlink(data)
    out = {}
    for path in base.rglob("*"):
        if path.is_file():
            out[str(path.relative_to(base))] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return out


def write_atomic(target: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """Make `target` show exactly `files`; return True when something changed."""
    target.mkdir(parents=True, exist_ok=True)
    if _current_files(target) == dict(files):
        return False
    ts_dir = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns() % 10**9}"
    ts_dir.mkdir()
    for rel, (content, mode) in files.items():
        path = ts_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
    old = os.readlink(target / DATA) if (target / DATA).is_symlink() else None
    tmp = target / "..data_tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(ts_dir.name, tmp)
    os.rename(tmp, target / DATA)  # the one atomic step
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            os.symlink(f"{DATA}/{top}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old and old != ts_dir.name:
        shutil.rmtree(target / old, ignore_errors=True)
    return True


def volume_path(root: str, uid: str, volume: Any) -> Path:
    base = pod_dir(root, uid) / "volumes"
    if volume.host_path.path:
        return Path(volume.host_path.path)
    if volume.HasField("config_map"):
        return base / "configmap" / volume.name
    if volume.HasField("secret"):
        return base / "secret" / volume.name
    return base / "empty-dir" / volume.name


def setup_volumes(pod: Any, root: str, *, config_maps: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, str]:
    """Create or refresh every volume; volume name -> host path. Raises ConfigError."""
    uid = pod.metadata.uid
    out: dict[str, str] = {}
    for v in pod.spec.volumes:
        path = volume_path(root, uid, v)
        if v.host_path.path:
            _host_path(path, v.host_path.type)
        elif v.HasField("config_map"):
            src = v.config_map
            files = plan_projection(src.items, config_map_bytes(config_maps.get(src.name)),
                                    default_mode=src.default_mode if src.HasField("default_mode") else None,
                                    optional=bool(src.optional), kind="configmap", name=src.name)
            write_atomic(path, files)
        elif v.HasField("secret"):
            ssrc = v.secret
            sec = secrets.get(ssrc.secret_name)
            files = plan_projection(ssrc.items, dict(sec.data.items()) if sec is not None else None,
                                    default_mode=ssrc.default_mode if ssrc.HasField("default_mode") else None,
                                    optional=bool(ssrc.optional), kind="secret", name=ssrc.secret_name)
            write_atomic(path, files)
        else:  # emptyDir (and any source this agent does not know: an empty dir)
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)
            if v.empty_dir.medium == "Memory" and not os.path.ismount(path):
                _mount_tmpfs(path, v.empty_dir.size_limit)
        out[v.name] = str(path)
    return out


def _host_path(path: Path, type_: str) -> None:
    if type_ == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif type_ == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif type_ == "Directory" and not path.is_dir():
        raise ConfigError(f"hostPath type check failed: {path} is not a directory")
    elif type_ == "File" and not path.is_file():
        raise ConfigError(f"hostPath type check failed: {path} is not a file")


def referenced_volume_objects(pod: Any) -> tuple[set[str], set[str]]:
    cms = {v.config_map.name for v in pod.spec.volumes if v.HasField("config_map")}
    secrets = {v.secret.secret_name for v in pod.spec.volumes if v.HasField("secret")}
    return cms, secrets


def _mount_tmpfs(path: Path, size_limit: str) -> None:
    """emptyDir medium Memory: a tmpfs on the volume's directory, shared by the pod's
    containers through the bind mount (a per-container Docker tmpfs would not be)."""
    opts = "mode=0777"
    if size_limit:
        from node_agent.pods.env import parse_quantity

        opts += f",size={int(parse_quantity(size_limit))}"
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise ConfigError(f"emptyDir medium Memory: mount tmpfs on {path}: {res.stderr.strip()}")


def mounts_under(base: Path) -> list[str]:
    prefix = str(base) + "/"
    try:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
    except OSError:
        return []
    # Deepest first, so nested mounts come off before their parents.
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def teardown_volumes(root: str, uid: str) -> None:
    base = pod_dir(root, uid)
    for point in mounts_under(base):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)

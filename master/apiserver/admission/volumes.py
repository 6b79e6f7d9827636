"""Pod volumes: their defaults (file modes, field selector versions) and validation.

A volume is a name plus exactly one source (Kubernetes' inlined
VolumeSource, flat in JSON); this module checks that, and each source's own
required fields, as validateVolumes does. Container volume mounts are
checked against the names in `containers.py`.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.containers import field_ref, relative_path, resource_field_ref
from master.apiserver.admission.quantity import quantity_errors
from master.apiserver.errors import Cause, duplicate, forbidden, invalid, not_supported, required

DEFAULT_MODE = 0o644  # 420, Kubernetes' default for configMap/secret/downwardAPI/projected files
_SOURCES = (
    ("host_path", "hostPath"), ("empty_dir", "emptyDir"), ("secret", "secret"), ("nfs", "nfs"),
    ("persistent_volume_claim", "persistentVolumeClaim"), ("downward_api", "downwardAPI"),
    ("config_map", "configMap"), ("projected", "projected"),
)
_HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                    "FileOrCreate", "Socket"]
_MEDIA = ["", "HugePages", "Memory"]
MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


# --- defaults ----------------------------------------------------------------------

def default_volume(vol: Any) -> None:
    for name in ("secret", "config_map", "downward_api", "projected"):
        if vol.HasField(name) and not getattr(vol, name).HasField("default_mode"):
            getattr(vol, name).default_mode = DEFAULT_MODE
    for item in vol.downward_api.items if vol.HasField("downward_api") else ():
        _default_field_ref(item)
    for proj in vol.projected.sources if vol.HasField("projected") else ():
        for item in proj.downward_api.items if proj.HasField("downward_api") else ():
            _default_field_ref(item)
        if proj.HasField("service_account_token"):
            token = proj.service_account_token
            if not token.HasField("expiration_seconds"):
                token.expiration_seconds = 3600


def _default_field_ref(item: Any) -> None:
    if item.HasField("field_ref") and not item.field_ref.api_version:
        item.field_ref.api_version = "v1"


# --- validation --------------------------------------------------------------------

def validate_volumes(volumes: Any, path: str) -> tuple[list[Cause], set[str]]:
    """The causes, and the set of valid names that mounts may refer to."""
    causes: list[Cause] = []
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        p = f"{path}[{i}]"
        if not vol.name:
            causes.append(required(f"{p}.name"))
        else:
            name_causes = c.dns_label(f"{p}.name", vol.name)
            if vol.name in names:
                name_causes.append(duplicate(f"{p}.name", vol.name))
            causes += name_causes
            names.add(vol.name)
        causes += _source(vol, p)
    return causes, names


def _source(vol: Any, path: str) -> list[Cause]:
    present = [(n, j) for n, j in _SOURCES if vol.HasField(n)]
    if not present:
        return [c.required_because(path, "must specify a volume type")]
    if len(present) > 1:
        return [forbidden(f"{path}.{present[1][1]}", "may not specify more than 1 volume type")]
    name, json_name = present[0]
    return _CHECKS[name](getattr(vol, name), f"{path}.{json_name}")


def _host_path(src: Any, path: str) -> list[Cause]:
    causes = [required(f"{path}.path")] if not src.path else []
    if src.type not in _HOST_PATH_TYPES:
        causes.append(not_supported(f"{path}.type", src.type, _HOST_PATH_TYPES))
    return causes


def _empty_dir(src: Any, path: str) -> list[Cause]:
    causes = [] if src.medium in _MEDIA else [not_supported(f"{path}.medium", src.medium, _MEDIA)]
    if src.size_limit:
        causes += [invalid(f"{path}.sizeLimit", src.size_limit, e) for e in quantity_errors(src.size_limit)]
    return causes


def _secret(src: Any, path: str) -> list[Cause]:
    causes = [required(f"{path}.secretName")] if not src.secret_name else []
    return causes + _mode(src, "default_mode", f"{path}.defaultMode") + _items(src.items, f"{path}.items")


def _config_map(src: Any, path: str) -> list[Cause]:
    causes = [required(f"{path}.name")] if not src.name else []
    return causes + _mode(src, "default_mode", f"{path}.defaultMode") + _items(src.items, f"{path}.items")


def _pvc(src: Any, path: str) -> list[Cause]:
    return [required(f"{path}.claimName")] if not src.claim_name else []


def _nfs(src: Any, path: str) -> list[Cause]:
    causes = [required(f"{path}.server")] if not src.server else []
    if not src.path:
        causes.append(required(f"{path}.path"))
    elif not src.path.startswith("/"):
        causes.append(invalid(f"{path}.path", src.path, "must be an absolute path"))
    return causes


def _downward_api(src: Any, path: str) -> list[Cause]:
    return _mode(src, "default_mode", f"{path}.defaultMode") + _downward_items(src.items, f"{path}.items")


def _downward_items(items: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        causes += [required(f"{p}.path")] if not item.path else relative_path(f"{p}.path", item.path)
        causes += _mode(item, "mode", f"{p}.mode")
        refs = [n for n in ("field_ref", "resource_field_ref") if item.HasField(n)]
        if len(refs) != 1:
            causes.append(invalid(p, "", "fieldRef and resourceFieldRef can not be specified simultaneously"
                                  if refs else "must specify one of: `fieldRef` or `resourceFieldRef`"))
        elif refs[0] == "field_ref":
            causes += field_ref(item.field_ref, f"{p}.fieldRef")
        else:
            causes += resource_field_ref(item.resource_field_ref, f"{p}.resourceFieldRef")
    return causes


def _projected(src: Any, path: str) -> list[Cause]:
    causes = _mode(src, "default_mode", f"{path}.defaultMode")
    kinds = (("secret", "secret"), ("downward_api", "downwardAPI"), ("config_map", "configMap"),
             ("service_account_token", "serviceAccountToken"))
    for i, proj in enumerate(src.sources):
        p = f"{path}.sources[{i}]"
        present = [(n, j) for n, j in kinds if proj.HasField(n)]
        if len(present) != 1:
            causes.append(forbidden(p, "may not specify more than 1 volume type") if present
                          else c.required_because(p, "must specify exactly 1 volume type"))
            continue
        name, json_name = present[0]
        sub, sp = getattr(proj, name), f"{p}.{json_name}"
        if name in ("secret", "config_map"):
            causes += _items(sub.items, f"{sp}.items")
        elif name == "downward_api":
            causes += _downward_items(sub.items, f"{sp}.items")
        else:
            causes += [required(f"{sp}.path")] if not sub.path else relative_path(f"{sp}.path", sub.path)
            if sub.expiration_seconds < 600:
                causes.append(invalid(f"{sp}.expirationSeconds", sub.expiration_seconds,
                                      "may not specify a duration less than 10 minutes"))
    return causes


def _items(items: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        causes += [required(f"{p}.key")] if not item.key else []
        causes += [required(f"{p}.path")] if not item.path else relative_path(f"{p}.path", item.path)
        causes += _mode(item, "mode", f"{p}.mode")
    return causes


def _mode(msg: Any, name: str, path: str) -> list[Cause]:
    if msg.HasField(name) and not 0 <= getattr(msg, name) <= 0o777:
        return [invalid(path, getattr(msg, name), MODE_MSG)]
    return []


_CHECKS = {
    "host_path": _host_path, "empty_dir": _empty_dir, "secret": _secret, "nfs": _nfs,
    "persistent_volume_claim": _pvc, "downward_api": _downward_api, "config_map": _config_map,
    "projected": _projected,
}

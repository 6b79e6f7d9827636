"""A container's environment, resources and the pod's /etc/hosts, as pure functions.

Owns: resolving env (value, $(VAR) expansion, configMapKeyRef, secretKeyRef,
fieldRef, resourceFieldRef) and envFrom in Kubernetes' order (envFrom first,
then env, later wins); quantities to Docker's units (nano_cpus, memory bytes);
rendering /etc/hosts (localhost, the pod's IP -> hostname, hostAliases).
Must not: fetch anything: the executor fetches the ConfigMaps and Secrets this
names (`referenced_objects`) and passes them in. A missing reference raises
ConfigError, which becomes CreateContainerConfigError with this message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIXES: dict[str, Fraction] = {
    **{k: Fraction(1024**e) for k, e in _BINARY.items()},
    **{k: Fraction(10) ** e for k, e in _DECIMAL.items()},
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


class ConfigError(Exception):
    """A container cannot be configured (CreateContainerConfigError)."""


def parse_quantity(text: str) -> Fraction:
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ConfigError(f"quantities must match the regular expression: {text!r}")
    return Fraction(m.group(1)) * _SUFFIXES[m.group(2) or ""]


def memory_limit_bytes(container: Any) -> int:
    q = container.resources.limits.get("memory")
    return int(parse_quantity(q)) if q else 0


def nano_cpus(container: Any) -> int:
    q = container.resources.limits.get("cpu")
    return int(parse_quantity(q) * 10**9) if q else 0


def cpu_shares(container: Any) -> int:
    q = container.resources.requests.get("cpu")
    return max(2, int(parse_quantity(q) * 1024)) if q else 0


def referenced_objects(container: Any) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets a container's env and envFrom read."""
    cms: set[str] = set()
    secrets: set[str] = set()
    for ef in container.env_from:
        if ef.config_map_ref.name:
            cms.add(ef.config_map_ref.name)
        if ef.secret_ref.name:
            secrets.add(ef.secret_ref.name)
    for e in container.env:
        if e.value_from.config_map_key_ref.name:
            cms.add(e.value_from.config_map_key_ref.name)
        if e.value_from.secret_key_ref.name:
            secrets.add(e.value_from.secret_key_ref.name)
    return cms, secrets


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names replaced, $$ escapes, unknown kept."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


def _field(pod: Any, path: str, *, pod_ip: str, host_ip: str) -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name, "metadata.namespace": meta.namespace, "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name, "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod_ip, "status.hostIP": host_ip, "status.podIPs": pod_ip, "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        source = meta.labels if m.group(1) == "labels" else meta.annotations
        return str(source.get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _resource(pod: Any, container: Any, ref: Any) -> str:
    target = container
    if ref.container_name:
        target = next((c for c in pod.spec.containers if c.name == ref.container_name), None)
        if target is None:
            raise ConfigError(f"resourceFieldRef: no container {ref.container_name!r}")
    kind, _, res = ref.resource.partition(".")
    values = target.resources.limits if kind == "limits" else target.resources.requests
    divisor = parse_quantity(ref.divisor) if ref.divisor else Fraction(1)
    raw = values.get(res)
    if raw is None:
        return "0" if kind == "requests" else "0"
    q = parse_quantity(raw) / divisor
    return str(int(q) if q.denominator == 1 else -(-q.numerator // q.denominator))


def compute_env(
    pod: Any,
    container: Any,
    *,
    config_maps: Mapping[str, Any],
    secrets: Mapping[str, Any],
    pod_ip: str,
    host_ip: str,
) -> dict[str, str]:
    ns = pod.metadata.namespace
    env: dict[str, str] = {}
    for ef in container.env_from:
        if ef.config_map_ref.name:
            cm = config_maps.get(ef.config_map_ref.name)
            if cm is None:
                if ef.config_map_ref.optional:
                    continue
                raise ConfigError(f'configmap "{ef.config_map_ref.name}" not found')
            for k, v in cm.data.items():
                env[ef.prefix + k] = v
        if ef.secret_ref.name:
            s = secrets.get(ef.secret_ref.name)
            if s is None:
                if ef.secret_ref.optional:
                    continue
                raise ConfigError(f'secret "{ef.secret_ref.name}" not found')
            for k, b in s.data.items():
                env[ef.prefix + k] = b.decode("utf-8", errors="replace")
    for e in container.env:
        vf = e.value_from
        if vf.config_map_key_ref.name:
            ref = vf.config_map_key_ref
            cm = config_maps.get(ref.name)
            if cm is None or ref.key not in cm.data:
                if ref.optional:
                    continue
                if cm is None:
                    raise ConfigError(f'configmap "{ref.name}" not found')
                raise ConfigError(f"couldn't find key {ref.key} in ConfigMap {ns}/{ref.name}")
            env[e.name] = cm.data[ref.key]
        elif vf.secret_key_ref.name:
            sref = vf.secret_key_ref
            s = secrets.get(sref.name)
            if s is None or sref.key not in s.data:
                if sref.optional:
                    continue
                if s is None:
                    raise ConfigError(f'secret "{sref.name}" not found')
                raise ConfigError(f"couldn't find key {sref.key} in Secret {ns}/{sref.name}")
            env[e.name] = s.data[sref.key].decode("utf-8", errors="replace")
        elif vf.field_ref.field_path:
            env[e.name] = _field(pod, vf.field_ref.field_path, pod_ip=pod_ip, host_ip=host_ip)
        elif vf.resource_field_ref.resource:
            env[e.name] = _resource(pod, container, vf.resource_field_ref)
        else:
            env[e.name] = expand(e.value, env)
    return env


def render_hosts(pod: Any, *, pod_ip: str) -> str:
    """The pod's /etc/hosts, shaped like kubelet's managed file."""
    hostname = pod.spec.hostname or pod.metadata.name
    lines = [
        "# Kubernetes-managed hosts file (Flotilla).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if pod_ip:
        if pod.spec.subdomain:
            fqdn = f"{hostname}.{pod.spec.subdomain}.{pod.metadata.namespace}.svc.cluster.local"
            lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
        else:
            lines.append(f"{pod_ip}\t{hostname}")
    for alias in pod.spec.host_aliases:
        lines.append(f"{alias.ip}\t" + "\t".join(alias.hostnames))
    return "\n".join(lines) + "\n"


def compute_dns(pod: Any, *, cluster_dns: tuple[str, ...], cluster_domain: str) -> tuple[
        tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(nameservers, searches, options) for the pod's resolv.conf, by dnsPolicy.

    ClusterFirst (the default; for hostNetwork pods only with
    ClusterFirstWithHostNet) uses the cluster DNS when one is configured, with
    Kubernetes' search path and ndots:5; Default (or no cluster DNS) leaves the
    node's resolver; None uses dnsConfig alone. dnsConfig is appended as
    Kubernetes does."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    ns = pod.metadata.namespace
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not pod.spec.host_network)
    if cluster and cluster_dns:
        servers = list(cluster_dns)
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = ["ndots:5"]
    cfg = pod.spec.dns_config
    servers += [s for s in cfg.nameservers if s not in servers]
    searches += [s for s in cfg.searches if s not in searches]
    for opt in cfg.options:
        text = f"{opt.name}:{opt.value}" if opt.HasField("value") else opt.name
        options = [o for o in options if o.split(":", 1)[0] != opt.name] + [text]
    return tuple(servers[:3]), tuple(searches[:32]), tuple(options)

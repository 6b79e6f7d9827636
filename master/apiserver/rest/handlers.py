"""REST verbs on resources: the Kubernetes HTTP semantics over the registry.

Each handler parses what the request says (path, query, body), calls the
registry once, and renders the answer (object, list, Table or Status). The
registry does the work; nothing here touches etcd or the cache directly.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from master.apiserver import errors
from master.apiserver import patch as patching
from master.apiserver.objects import StoredObject
from master.apiserver.patchschema import schema_for
from master.apiserver.registry import DeleteOptions, Registry, parse_resource_version, resource_info
from master.apiserver.rest import body as bodies
from master.apiserver.rest import query as q
from master.apiserver.rest import responses as out
from master.apiserver.rest.paths import Route
from master.apiserver.selectors import (
    SelectorError,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
)
from master.apiserver.watchcache import Filter
from protos.codec import DecodeError, from_dict
from protos.meta.v1 import meta_pb2
from protos.resources import ResourceInfo

PODS = resource_info("", "pods")


class Handlers:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # --- collection ----------------------------------------------------------

    async def list_(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        query = request.query
        flt = make_filter(info, route.namespace, query)
        rv_text = query.get("resourceVersion", "")
        if rv_text:
            parse_resource_version(rv_text)
        limit = q.go_int(query, "limit")
        q.go_int(query, "timeoutSeconds")
        token = query.get("continue", "")
        start_key = ""
        if token:
            rv_text, start_key = decode_continue(token)
        objs, rv = await self.registry.list(info, flt, resource_version=rv_text)
        if start_key:
            objs = [o for o in objs if o.key > start_key]
        next_token, remaining = "", None
        if limit and len(objs) > limit:
            remaining = len(objs) - limit
            objs = objs[:limit]
            next_token = encode_continue(rv, objs[-1].key)
        if out.wants_table(request.headers.get("Accept", "")):
            include = out.include_object(query)
            return out.raw(
                out.table_body(info, objs, rv, include=include, now=self.registry.now()),
                content_type=out.TABLE_CT,
            )
        return out.raw(out.list_body(info, objs, rv, continue_token=next_token, remaining=remaining))

    async def create(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        warnings: list[str] = []
        dry = q.dry_run(request.query)
        validation = q.field_validation(request.query)
        data = await read_document(request, validation=validation, warnings=warnings)
        msg = bodies.decode_object(info, data, validation=validation, warnings=warnings)
        obj = await self.registry.create(info, route.namespace, msg, dry_run=dry)
        return out.obj_response(obj, status=201, warnings=warnings)

    async def delete_collection(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        flt = make_filter(info, route.namespace, request.query)
        q.go_int(request.query, "timeoutSeconds")
        opts = await delete_options(request)
        objs, rv = await self.registry.list(info, flt, resource_version="")
        gone = []
        for o in objs:
            try:
                obj, _ = await self.registry.delete(info, o.namespace, o.name, opts)
            except errors.APIError as exc:
                if exc.code == 404:
                    continue
                raise
            gone.append(obj)
        return out.raw(out.list_body(info, gone, rv))

    # --- one object -----------------------------------------------------------

    async def _exists(self, route: Route) -> bool:
        try:
            await self.registry.get(route.info, route.namespace, route.name)
        except errors.APIError as exc:
            if exc.code != 404 or route.subresource:
                raise
            return False
        return True

    async def get(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        obj = await self.registry.get(info, route.namespace, route.name)
        if route.subresource == "scale":
            return out.dict_response(scale_of(info, obj))
        if out.wants_table(request.headers.get("Accept", "")):
            include = out.include_object(request.query)
            return out.raw(
                out.table_body(info, [obj], obj.rv, include=include, now=self.registry.now()),
                content_type=out.TABLE_CT,
            )
        return out.obj_response(obj)

    async def update(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        warnings: list[str] = []
        dry = q.dry_run(request.query)
        validation = q.field_validation(request.query)
        data = await read_document(request, validation=validation, warnings=warnings)
        if route.subresource == "scale":
            scale = decode_scale(data, validation=validation, warnings=warnings)
            obj = await self.set_replicas(route, scale, dry_run=dry)
            return out.dict_response(scale_of(info, obj), warnings=warnings)
        msg = bodies.decode_object(info, data, validation=validation, warnings=warnings)
        sub = "status" if route.subresource == "status" else ""
        if route.subresource == "finalize":
            sub = "finalize"
        obj = await self.registry.update(info, route.namespace, route.name, msg, subresource=sub, dry_run=dry)
        return out.obj_response(obj, warnings=warnings)

    async def patch(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        mtype = bodies.media_type(request.headers.get("Content-Type"))
        if mtype not in bodies.PATCH_TYPES:
            raise errors.UnsupportedMediaType(mtype)
        dry = q.dry_run(request.query)
        validation = q.field_validation(request.query)
        warnings: list[str] = []
        document = bodies.parse_document(await read_body(request), mtype, validation=validation, warnings=warnings)
        body_warnings = list(warnings)
        if route.subresource == "scale":
            return await self.patch_scale(route, mtype, document, dry_run=dry, validation=validation, warnings=warnings)
        if mtype == bodies.APPLY_PATCH:
            if not isinstance(document, dict):
                raise errors.BadRequest("an apply patch must be a JSON or YAML object")
            if document.get("apiVersion") != info.api_version or document.get("kind") != info.kind:
                raise errors.BadRequest(
                    f"Incorrect version specified in apply patch. Specified patch version: "
                    f"{document.get('apiVersion') or ''}, expected: {info.api_version}"
                    if document.get("apiVersion") != info.api_version else
                    f"Incorrect kind specified in apply patch. Specified patch kind: "
                    f"{document.get('kind') or ''}, expected: {info.kind}"
                )
            named = document.get("metadata", {}).get("name") if isinstance(document.get("metadata"), dict) else None
            if isinstance(named, str) and named and named != route.name:
                raise errors.BadRequest(f"the name of the object ({named}) does not match the name on the URL ({route.name})")
            if not await self._exists(route):
                msg = bodies.decode_object(info, document, validation=validation, warnings=warnings)
                if msg.metadata.name and msg.metadata.name != route.name:
                    raise errors.BadRequest(
                        f"the name of the object ({msg.metadata.name}) does not match the name on the URL ({route.name})"
                    )
                msg.metadata.name = route.name
                obj = await self.registry.create(info, route.namespace, msg, dry_run=dry)
                return out.obj_response(obj, status=201, warnings=warnings)
        schema = schema_for(info.message_class().DESCRIPTOR)

        async def mutate(current: StoredObject) -> Any:
            original = json.loads(current.to_json())
            patched = apply_patch(mtype, original, document, schema)
            if not isinstance(patched, dict):
                raise errors.BadRequest("the patch produced something that is not an object")
            meta = patched.get("metadata")
            pinned = meta.get("resourceVersion") if isinstance(meta, dict) else None
            if pinned not in (None, "") and pinned != str(current.rv):
                raise errors.Conflict(info.resource, route.name, errors.STALE, group=info.group)
            warnings[:] = body_warnings
            return bodies.decode_object(info, patched, validation=validation, warnings=warnings)

        sub = "status" if route.subresource == "status" else ""
        obj = await self.registry.guaranteed_update(
            info, route.namespace, route.name, mutate, subresource=sub, dry_run=dry
        )
        return out.obj_response(obj, warnings=warnings)

    async def delete(self, request: web.Request, route: Route) -> web.StreamResponse:
        info = route.info
        opts = await delete_options(request)
        obj, gone = await self.registry.delete(info, route.namespace, route.name, opts)
        if gone and info.kind not in ("Pod", "Namespace"):
            # Kubernetes answers most immediate deletions with a Success Status
            # naming the object; pods and namespaces answer with the object.
            return out.dict_response(out.success_status(info, obj))
        return out.obj_response(obj)

    # --- subresources ----------------------------------------------------------

    async def binding(self, request: web.Request, route: Route) -> web.StreamResponse:
        validation = q.field_validation(request.query)
        warnings: list[str] = []
        data = await read_document(request, validation=validation, warnings=warnings)
        if not isinstance(data, dict):
            raise errors.BadRequest("a Binding must be a JSON object")
        from protos.core.v1 import core_pb2

        try:
            binding, unknown = from_dict(core_pb2.Binding, data)
        except DecodeError as exc:
            raise errors.BadRequest(f'Binding in version "v1" cannot be handled as a Binding: {exc}') from None
        if unknown:
            bodies.apply_field_validation(unknown, validation=validation, warnings=warnings)
        await bind_pod(self.registry, route.namespace, route.name, binding, dry_run=q.dry_run(request.query))
        return out.dict_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, status=201, warnings=warnings)

    async def set_replicas(self, route: Route, scale: Any, *, dry_run: bool) -> StoredObject:
        info = route.info
        if not scale.spec.HasField("replicas"):
            raise errors.Invalid("Scale", route.name, [errors.required("spec.replicas")], group="autoscaling")
        if scale.spec.replicas < 0:
            raise errors.Invalid("Scale", route.name, [errors.invalid("spec.replicas", scale.spec.replicas, "must be greater than or equal to 0")], group="autoscaling")
        pinned = scale.metadata.resource_version

        async def mutate(current: StoredObject) -> Any:
            if pinned and pinned != str(current.rv):
                raise errors.Conflict(info.resource, route.name, errors.STALE, group=info.group)
            new = current.copy_msg()
            new.spec.replicas = scale.spec.replicas
            return new

        return await self.registry.guaranteed_update(info, route.namespace, route.name, mutate, dry_run=dry_run)

    async def patch_scale(self, route: Route, mtype: str, document: Any, *, dry_run: bool, validation: str, warnings: list[str]) -> web.StreamResponse:
        info = route.info
        if mtype == bodies.APPLY_PATCH:
            raise errors.UnsupportedMediaType(mtype)
        current = await self.registry.get(info, route.namespace, route.name)
        patched = apply_patch(mtype, scale_of(info, current), document, schema_for(meta_pb2.Scale.DESCRIPTOR))
        scale = decode_scale(patched, validation=validation, warnings=warnings)
        obj = await self.set_replicas(route, scale, dry_run=dry_run)
        return out.dict_response(scale_of(info, obj), warnings=warnings)


# --- helpers ------------------------------------------------------------------

async def read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.TooLarge() from None


async def read_document(request: web.Request, *, validation: str, warnings: list[str]) -> Any:
    mtype = bodies.media_type(request.headers.get("Content-Type"))
    if mtype in bodies.PATCH_TYPES:
        raise errors.UnsupportedMediaType(mtype)
    return bodies.parse_document(await read_body(request), mtype, validation=validation, warnings=warnings)


def apply_patch(mtype: str, original: Any, document: Any, schema: Any) -> Any:
    try:
        if mtype == bodies.MERGE_PATCH:
            return patching.apply_merge_patch(original, document)
        if mtype == bodies.JSON_PATCH:
            return patching.apply_json_patch(original, document)
        if not isinstance(document, dict):
            raise errors.BadRequest("a strategic merge patch must be a JSON object")
        if mtype == bodies.APPLY_PATCH:
            return patching.apply_server_side(original, document, schema)
        return patching.apply_strategic_merge_patch(original, document, schema)
    except patching.PatchError as exc:
        code = getattr(exc, "code", 422)
        raise errors.APIError(str(exc), code, "Invalid" if code == 422 else "BadRequest") from None
    except RecursionError:
        raise errors.BadRequest("the patch is nested too deeply") from None


def make_filter(info: ResourceInfo, namespace: str, query: Any) -> Filter:
    try:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), allowed=info.all_field_selectors())
    except SelectorError as exc:
        raise errors.BadRequest(str(exc)) from None
    name = fields.value_for("metadata.name") or ""
    if not namespace and info.namespaced:
        namespace = fields.value_for("metadata.namespace") or ""
    return Filter(namespace=namespace, name=name, labels=labels, fields=fields)


async def delete_options(request: web.Request) -> DeleteOptions:
    query = request.query
    grace = q.go_int(query, "gracePeriodSeconds", minimum=-(2**31), maximum=2**31 - 1)
    policy = q.propagation_policy(query.get("propagationPolicy"))
    dry = q.dry_run(query)
    uid = rv = None
    raw = await read_body(request)
    if raw.strip():
        data = bodies.parse_document(raw, bodies.media_type(request.headers.get("Content-Type")))
        if not isinstance(data, dict):
            raise errors.BadRequest("DeleteOptions must be a JSON object")
        try:
            msg, _ = from_dict(meta_pb2.DeleteOptions, data)
        except DecodeError as exc:
            raise errors.BadRequest(f'DeleteOptions in version "v1" cannot be handled as a DeleteOptions: {exc}') from None
        if msg.HasField("grace_period_seconds"):
            grace = msg.grace_period_seconds
        if msg.propagation_policy:
            policy = q.propagation_policy(msg.propagation_policy)
        if msg.HasField("preconditions"):
            if msg.preconditions.HasField("uid"):
                uid = msg.preconditions.uid
            if msg.preconditions.HasField("resource_version"):
                rv = msg.preconditions.resource_version
        if list(msg.dry_run):
            if list(msg.dry_run) != ["All"]:
                raise errors.BadRequest('Invalid dryRun value: supported values: "All"')
            dry = True
    return DeleteOptions(grace_period_seconds=grace, propagation_policy=policy,
                         precondition_uid=uid, precondition_rv=rv, dry_run=dry)


def scale_of(info: ResourceInfo, obj: StoredObject) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a scalable object."""
    msg = obj.msg
    spec_replicas = msg.spec.replicas if msg.spec.HasField("replicas") else 1
    if info.kind == "ReplicationController":
        selector = ",".join(f"{k}={v}" for k, v in sorted(msg.spec.selector.items()))
    else:
        sel = obj.as_dict().get("spec", {}).get("selector")
        selector = str(label_selector_from_dict(sel)) if sel else ""
    meta = obj.as_dict().get("metadata", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": spec_replicas},
        "status": {"replicas": msg.status.replicas, "selector": selector},
    }


def decode_scale(data: Any, *, validation: str, warnings: list[str]) -> Any:
    if not isinstance(data, dict):
        raise errors.BadRequest("a Scale must be a JSON object")
    try:
        scale, unknown = from_dict(meta_pb2.Scale, data)
    except DecodeError as exc:
        raise errors.BadRequest(f'Scale in version "v1" cannot be handled as a Scale: {exc}') from None
    if unknown:
        bodies.apply_field_validation(unknown, validation=validation, warnings=warnings)
    return scale


async def bind_pod(registry: Registry, namespace: str, name: str, binding: Any, *, dry_run: bool = False) -> StoredObject:
    """pods/binding: set spec.nodeName once, mark PodScheduled (the scheduler's write)."""
    pods = PODS
    node = binding.target.name
    if not node:
        raise errors.Invalid("Binding", name, [errors.required("target.name")])
    if binding.metadata.name and binding.metadata.name != name:
        raise errors.BadRequest(f"the name of the object ({binding.metadata.name}) does not match the name on the URL ({name})")

    async def mutate(current: StoredObject) -> Any:
        pod = current.copy_msg()
        if pod.metadata.HasField("deletion_timestamp"):
            raise errors.Conflict("pods", name, "pod is being deleted, cannot be assigned to a host")
        if pod.spec.node_name:
            raise errors.Conflict("pods", name, f"pod {name} is already assigned to node \"{pod.spec.node_name}\"")
        pod.spec.node_name = node
        # Kubernetes copies the Binding's annotations onto the pod (the
        # scheduler's explanation travels this way).
        for key, value in binding.metadata.annotations.items():
            pod.metadata.annotations[key] = value
        now = registry.now().replace(microsecond=0)
        for c in pod.status.conditions:
            if c.type == "PodScheduled":
                c.status = "True"
                c.reason = ""
                c.message = ""
                c.last_transition_time.FromDatetime(now)
                break
        else:
            c = pod.status.conditions.add()
            c.type = "PodScheduled"
            c.status = "True"
            c.last_transition_time.FromDatetime(now)
        return pod

    return await registry.guaranteed_update(pods, namespace, name, mutate, subresource="binding", dry_run=dry_run)


def encode_continue(rv: int, key: str) -> str:
    raw = json.dumps({"v": 1, "rv": rv, "start": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        rv, start = int(data["rv"]), str(data["start"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise errors.BadRequest("continue key is not valid: the token is malformed") from None
    return str(rv), start


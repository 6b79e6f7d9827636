"""The REST face: an aiohttp application with Kubernetes' paths.

Routing is by path shape (rest/paths.py), not a route per resource: every
resource in the registry is served the same way. The error middleware is
the one place an exception becomes an HTTP answer: APIError -> its Status;
anything else -> a logged 500 Status (a bug, never expected).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from master.apiserver import discovery, errors
from master.apiserver.metrics import Metrics
from master.apiserver.registry import Registry
from master.apiserver.rest import podproxy
from master.apiserver.rest import query as q
from master.apiserver.rest import responses as out
from master.apiserver.rest.body import MAX_BODY_BYTES
from master.apiserver.rest.handlers import Handlers
from master.apiserver.rest.paths import Route, parse_path
from master.apiserver.rest.watch import serve_watch

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPENAPI_V2_CT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# What the metrics middleware labels a request with, set by the handlers.
VERB = web.RequestKey("flotilla_verb", str)
RESOURCE = web.RequestKey("flotilla_resource", str)


def make_app(registry: Registry, *, metrics: Metrics, ready: asyncio.Event, server_address: str = "") -> web.Application:
    handlers = Handlers(registry)
    app = web.Application(
        middlewares=[_error_middleware(metrics)],
        client_max_size=MAX_BODY_BYTES + 1024,
        handler_args={"max_field_size": 65536, "max_line_size": 65536},
    )

    async def version(_: web.Request) -> web.StreamResponse:
        return out.dict_response(discovery.version_info())

    async def api(request: web.Request) -> web.StreamResponse:
        return out.dict_response(discovery.api_versions(server_address or request.host))

    async def apis(_: web.Request) -> web.StreamResponse:
        return out.dict_response(discovery.api_group_list())

    async def api_group(request: web.Request) -> web.StreamResponse:
        doc = discovery.api_group(request.match_info["group"])
        if doc is None:
            raise errors.PathNotFound()
        return out.dict_response(doc)

    async def resource_list(request: web.Request) -> web.StreamResponse:
        group = request.match_info.get("group", "")
        doc = discovery.api_resource_list(group, request.match_info["version"])
        if doc is None:
            raise errors.PathNotFound()
        return out.dict_response(doc)

    async def openapi_v2(_: web.Request) -> web.StreamResponse:
        # An empty gnostic Document: kubectl skips client-side validation
        # (KUBECTL.md §2.5); the server validates everything itself.
        return web.Response(body=b"", headers={"Content-Type": OPENAPI_V2_CT})

    async def health(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/readyz") and not ready.is_set():
            return web.Response(status=503, text="[-]informer-sync failed: not ready\nreadyz check failed\n")
        return web.Response(text="ok")

    async def metrics_handler(_: web.Request) -> web.StreamResponse:
        for cache in registry.caches.all():
            metrics.watchers.labels(cache.info.resource).set(cache.watcher_count)
            metrics.cache_objects.labels(cache.info.resource).set(len(cache))
        body, ctype = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def resources(request: web.Request) -> web.StreamResponse:
        route = parse_path(request.path)
        request[RESOURCE] = route.info.resource
        return await dispatch(request, route)

    async def dispatch(request: web.Request, route: Route) -> web.StreamResponse:
        method = request.method
        sub = route.subresource
        if not route.name:
            if method == "GET":
                if q.go_bool(request.query, "watch"):
                    request[VERB] = "WATCH"
                    return await serve_watch(request, route, registry)
                request[VERB] = "LIST"
                return await handlers.list_(request, route)
            if method == "POST":
                return await handlers.create(request, route)
            if method == "DELETE":
                request[VERB] = "DELETECOLLECTION"
                return await handlers.delete_collection(request, route)
        elif sub in ("", "status", "scale", "finalize"):
            if method == "GET" and sub != "finalize":
                if sub == "" and q.go_bool(request.query, "watch"):
                    request[VERB] = "WATCH"
                    return await serve_watch(request, route, registry)
                return await handlers.get(request, route)
            if method == "PUT":
                return await handlers.update(request, route)
            if method == "PATCH" and sub != "finalize":
                return await handlers.patch(request, route)
            if method == "DELETE" and sub == "":
                return await handlers.delete(request, route)
        elif sub == "binding" and method == "POST":
            return await handlers.binding(request, route)
        elif sub == "log" and method == "GET":
            return await podproxy.serve_log(request, route, registry)
        elif sub == "exec" and method in ("GET", "POST"):
            return await podproxy.serve_exec(request, route, registry)
        raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")

    r = app.router
    for path in ("/version", "/version/"):
        r.add_get(path, version)
    r.add_get("/api", api)
    r.add_get("/api/", api)
    r.add_get("/apis", apis)
    r.add_get("/apis/", apis)
    r.add_get("/api/{version}", resource_list)
    r.add_get("/apis/{group}", api_group)
    r.add_get("/apis/{group}/{version}", resource_list)
    r.add_get("/openapi/v2", openapi_v2)
    for path in ("/healthz", "/livez", "/readyz"):
        r.add_get(path, health)
    r.add_get("/metrics", metrics_handler)
    r.add_route("*", "/api/{tail:.+}", resources)
    r.add_route("*", "/apis/{group}/{version}/{tail:.+}", resources)
    r.add_route("*", "/{tail:.*}", not_found)
    return app


async def not_found(_: web.Request) -> web.StreamResponse:
    raise errors.PathNotFound()


_VERBS = {"GET": "GET", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE"}


def _error_middleware(metrics: Metrics) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        code = 500
        try:
            resp = await handler(request)
            code = resp.status
            return resp
        except errors.APIError as exc:
            code = exc.code
            return out.status_response(exc)
        except web.HTTPRequestEntityTooLarge:
            code = 413
            return out.status_response(errors.TooLarge())
        except web.HTTPException as exc:
            # aiohttp's own (e.g. 405 from the router): keep the code, speak Status.
            code = exc.status
            return out.status_response(errors.APIError(exc.reason or "error", exc.status, exc.reason.replace(" ", "") if exc.reason else "Unknown"))
        except asyncio.CancelledError:
            code = 499
            raise
        except ConnectionResetError:
            code = 499
            raise
        except Exception as exc:  # a bug: answer a Status, keep serving
            log.exception("internal error serving %s %s", request.method, request.path)
            code = 500
            return out.status_response(errors.InternalError(type(exc).__name__))
        finally:
            verb = request.get(VERB) or _VERBS.get(request.method, request.method)
            resource = request.get(RESOURCE, "")
            metrics.observe(verb, resource, code, time.perf_counter() - start)

    return middleware

"""Non-resource endpoints of the API server: ``/version``, health, ``/openapi``, and the
sandbox's own control endpoints under ``/sandbox/`` (stats, recent requests, faults, tokens,
node loss).

A mixin of :class:`.apiserver.ApiServer`; :func:`.apiserver.create_app` routes these URLs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import discovery, errors, nodes
from .access import Access
from .faults import Faults
from .responses import json_response
from .routing import _int_param
from .state import ApiState
from .stats import RequestStats
from .store import Watcher


class NonResourceHandlers:
    """Discovery extras and the ``/sandbox/*`` control endpoints (admin only)."""

    # what this mixin uses of ApiServer
    state: ApiState
    access: Access
    stats: RequestStats
    faults: Faults
    watchers: set[Watcher]
    node_control: Any

    # --- discovery & openapi -------------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        """``GET /version``."""
        return json_response(discovery.SERVER_VERSION)

    async def health(self, request: web.Request) -> web.Response:
        """``/healthz``, ``/readyz``, ``/livez``."""
        return web.Response(text="ok")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        """An empty protobuf document: kubectl then skips client-side validation."""
        return web.Response(
            body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )

    async def openapi_v3(self, request: web.Request) -> web.Response:
        """The OpenAPI v3 index (CRD group-versions only)."""
        return json_response(discovery.openapi_v3_index(self.state.registry))

    async def openapi_v3_gv(self, request: web.Request) -> web.Response:
        """``/openapi/v3/apis/<group>/<version>`` for CRD group-versions."""
        parts = request.match_info["tail"].strip("/").split("/")
        doc = None
        if len(parts) == 3 and parts[0] == "apis":
            doc = discovery.openapi_v3_document(self.state.registry, parts[1], parts[2])
        if doc is None:
            raise errors.plain_not_found()
        return json_response(doc)

    # --- sandbox extras -----------------------------------------------------------------------
    async def get_stats(self, request: web.Request) -> web.Response:
        """``GET /sandbox/stats``."""
        return json_response(
            self.stats.to_json(len(self.watchers)) | {"resourceVersion": self.state.store.rv}
        )

    async def reset_stats(self, request: web.Request) -> web.Response:
        """``POST /sandbox/stats/reset``."""
        self.stats.reset()
        return json_response({"reset": True})

    async def get_requests(self, request: web.Request) -> web.Response:
        """``GET /sandbox/requests?limit=N``."""
        limit = _int_param(request.query.get("limit"), "limit", 100)
        return json_response({"items": self.stats.recent(limit)})

    async def get_faults(self, request: web.Request) -> web.Response:
        """``GET /sandbox/faults``."""
        return json_response(self.faults.to_json())

    async def mint_token(self, request: web.Request) -> web.Response:
        """``POST /sandbox/tokens``: a bearer token for a named user and groups."""
        return json_response(self.access.mint_user(await request.json()), status=201)

    async def set_faults(self, request: web.Request) -> web.Response:
        """``POST /sandbox/faults`` with the new configuration (``{}`` turns faults off)."""
        try:
            self.faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            raise errors.bad_request(str(exc)) from exc
        return json_response(self.faults.to_json())

    async def node_action(self, request: web.Request) -> web.Response:
        """``POST /sandbox/nodes/{name}/{action}``: crash or start a node (:mod:`.nodes`)."""
        return await nodes.handle(self.node_control, request)

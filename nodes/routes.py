"""Server routes the frontend uses: the SAE list and one SAE's summary. Every parameter is validated; names resolve
only inside the registered models/sae folders; bad requests get a 4xx with a one-line reason, never a traceback."""

from __future__ import annotations

import logging
from typing import Callable

from aiohttp import web

MAX_NAME = 512


def handlers(list_saes: Callable[[], list[str]], describe: Callable[[str, str | None], dict],
             relative: Callable[[str, str], str] = lambda text, name: text) -> list[web.RouteDef]:
    """Route definitions, independent of ComfyUI's server so they can be tested with aiohttp's test client.
    ``relative(message, name)`` rewrites the server's absolute paths in error messages relative to models/sae."""

    async def saes(_request: web.Request) -> web.Response:
        return web.json_response({"saes": list_saes()})

    async def sae_info(request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        hookpoint = request.query.get("hookpoint") or None
        if not name or len(name) > MAX_NAME or "\x00" in name or (hookpoint and len(hookpoint) > 200):
            return web.json_response({"error": "give ?name=<an SAE from /lvo/saes> (at most 512 characters)"},
                                     status=400)
        if name not in list_saes():
            return web.json_response({"error": f"unknown SAE '{name[:80]}'; see /lvo/saes"}, status=404)
        try:
            return web.json_response(describe(name, hookpoint))
        except ValueError as exc:  # every LVOError is a ValueError: bad file or bad hookpoint
            return web.json_response({"error": relative(str(exc), name)}, status=422)
        except Exception as exc:  # never a traceback to the client; the server log keeps it
            logging.exception("lvo: /lvo/sae_info failed")
            return web.json_response({"error": f"internal error ({type(exc).__name__})"}, status=500)

    return [web.get("/lvo/saes", saes), web.get("/lvo/sae_info", sae_info)]


def register() -> None:
    """Add the routes to ComfyUI's running server (called at import time inside ComfyUI only)."""
    from server import PromptServer

    from ..lvo_core.sae import describe, load_sae
    from . import comfy_glue as glue

    def describe_one(name: str, hookpoint: str | None) -> dict:
        path = glue.sae_path(name)
        return load_sae(path, hookpoint=hookpoint).summary() if hookpoint else describe(path)

    def relative(text: str, name: str) -> str:
        try:
            return glue.relative_message(text, name, glue.sae_path(name))
        except ValueError:
            return glue.relative_message(text)

    table = PromptServer.instance.routes  # an aiohttp RouteTableDef: add through its public decorator
    for route in handlers(glue.list_saes, describe_one, relative):
        table.route(route.method, route.path)(route.handler)

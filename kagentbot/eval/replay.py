"""A loopback web server replaying the public APIs the network tools call, in their real wire
formats, from recorded fixtures (kagentbot/eval/fixtures): Wikipedia (action API and REST
summary), Open-Meteo (geocoding, forecast, archive), SearXNG's JSON API, and article pages.
`kagentbot eval e2e` points the tools at it so runs are repeatable offline; the tools' tests use
the same server and fixtures. It records every request."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class ReplayWeb:
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    searxng_failures: int = 0  # answer 502 this many times before working
    searxng_json: bool = True
    searxng_delay: float = 0.0
    port: int = 0

    def __post_init__(self) -> None:
        self._replays = {
            kind: [json.loads(p.read_text("utf-8")) for p in sorted(FIXTURES.glob(f"*/{kind}_*.json"))]
            for kind in ("geocoding", "forecast", "archive", "search")
        }

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, prefix: str = "/") -> int:
        return sum(1 for path, _ in self.requests if path.startswith(prefix))

    async def __aenter__(self) -> ReplayWeb:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/wiki/{lang}/w/api.php", self._wiki_action)
        app.router.add_get("/wiki/{lang}/api/rest_v1/page/summary/{title}", self._wiki_summary)
        app.router.add_get("/geo/v1/search", self._geocoding)
        app.router.add_get("/meteo/v1/forecast", self._replay("forecast"))
        app.router.add_get("/archive/v1/archive", self._replay("archive"))
        app.router.add_get("/searx/search", self._searxng)
        app.router.add_get("/pages/{name}", self._page)
        self._extra_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        self.user_agents.append(request.headers.get("User-Agent", ""))
        return await handler(request)

    async def _wiki_action(self, request: web.Request) -> web.Response:
        lang, q = request.match_info["lang"], request.query
        if q.get("action") != "query" or q.get("format") != "json":
            return web.json_response({"error": {"code": "badvalue", "info": "Unrecognized value for parameter \"action\"."}})
        if q.get("list") == "search":
            return web.json_response(_load(f"wikipedia/{lang}_search_{_key(q['srsearch'])}.json")
                                     or {"batchcomplete": "", "query": {"searchinfo": {"totalhits": 0}, "search": []}})
        if q.get("prop") == "extracts":
            body = _load(f"wikipedia/{lang}_extract_{_key(q['titles'])}.json")
            return web.json_response(body or {"batchcomplete": "", "query": {"pages": {"-1": {"ns": 0, "title": q["titles"], "missing": ""}}}})
        return web.json_response({"batchcomplete": ""})

    async def _wiki_summary(self, request: web.Request) -> web.Response:
        lang, title = request.match_info["lang"], request.match_info["title"]
        body = _load(f"wikipedia/{lang}_summary_{title}.json")
        if body is None:
            return web.json_response(
                {"type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found", "title": "Not found.", "method": "get",
                 "detail": "Page or revision not found.", "uri": f"/{lang}.wikipedia.org/v1/page/summary/{title}"}, status=404)
        return web.json_response(body)

    async def _geocoding(self, request: web.Request) -> web.Response:
        for replay in self._replays["geocoding"]:
            if all(request.query.get(k) == v for k, v in replay["request"].items()):
                return web.json_response(replay["response"])
        return web.json_response({"generationtime_ms": 0.4320145})  # Open-Meteo's "no match"

    def _replay(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if "daily" not in request.query or request.query.get("timezone") != "auto":
                return web.json_response({"error": True, "reason": "Parameter 'daily' is required"}, status=400)
            for replay in self._replays[kind]:
                if all(request.query.get(k) == v for k, v in replay["request"].items()):
                    return web.json_response(replay["response"])
            reason = "Parameter 'start_date' is out of allowed range from 2026-08-27 to 2026-12-10"
            return web.json_response({"error": True, "reason": reason}, status=400)
        return handler

    async def _searxng(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.searxng_delay)
        if self.searxng_failures > 0:
            self.searxng_failures -= 1
            return web.Response(status=502, text="Bad Gateway")
        if request.query.get("format") == "json" and not self.searxng_json:
            return web.Response(status=403, text="403 Forbidden")
        for replay in self._replays["search"]:
            if request.query.get("q") == replay["request"]["q"]:
                return web.json_response(replay["response"])
        return web.json_response({"query": request.query.get("q", ""), "number_of_results": 0, "results": [], "answers": [],
                                  "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []})

    async def _page(self, request: web.Request) -> web.Response:
        path = FIXTURES / "pages" / request.match_info["name"]
        if not path.is_file():
            return web.Response(status=404, text="not found")
        kinds = {".html": "text/html", ".txt": "text/plain", ".json": "application/json", ".pdf": "application/pdf"}
        return web.Response(body=path.read_bytes(), content_type=kinds.get(path.suffix, "application/octet-stream"),
                            charset="utf-8" if path.suffix != ".pdf" else None)

    def _extra_routes(self, app: web.Application) -> None:
        """Subclasses add routes here (the tests' hazards: redirects, huge and slow pages)."""


def _key(text: str) -> str:
    return text.replace(" ", "_")


def _load(relative: str) -> Any:
    path = FIXTURES / relative
    return json.loads(path.read_text("utf-8")) if path.is_file() else None

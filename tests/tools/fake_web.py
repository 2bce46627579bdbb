"""The tools' loopback web fake: kagentbot's replay server (kagentbot/eval/replay.py, the same
recorded fixtures `kagentbot eval e2e` uses) plus hazards only tests need: a redirect, a page
too big to read, an image, and a page slower than the timeout."""

from __future__ import annotations

import asyncio

from aiohttp import web

from kagentbot.eval.replay import FIXTURES, ReplayWeb

__all__ = ["FIXTURES", "FakeWeb"]


class FakeWeb(ReplayWeb):
    def _extra_routes(self, app: web.Application) -> None:
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/big", self._big)
        app.router.add_get("/image.png", self._image)
        app.router.add_get("/slow", self._slow)

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})  # no length: the limit must cut the stream
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"<p>" + b"x" * 16384 + b"</p>")
        return response

    async def _image(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 64, content_type="image/png")

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text="too late", content_type="text/plain")

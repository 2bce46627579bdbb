"""S3 on loopback for tests: moto's S3 server (which honours conditional writes: a second PUT
with If-None-Match: * gets 412), and a proxy in front of it that drops the conditions on the
way, as an S3-compatible store that ignores them behaves (PUT always 200)."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, web

CONDITIONS = ("if-none-match", "if-match")


class MotoS3:
    """`with MotoS3() as s3:` → `s3.endpoint`; `s3.bucket(name)` creates one."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def __enter__(self) -> MotoS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=name)
        return name


def storage_options(endpoint: str) -> dict[str, str]:
    """`memory.storage_options` for a loopback S3 (LanceDB's names)."""
    return {"aws_endpoint": endpoint, "aws_region": "us-east-1", "allow_http": "true",
            "aws_access_key_id": "test", "aws_secret_access_key": "test", "connect_timeout": "2s", "timeout": "5s"}


class ConditionDroppingProxy:
    """Forwards every request to `upstream` without its If-None-Match / If-Match headers.
    `async with ConditionDroppingProxy(url) as proxy:` → `proxy.endpoint`; `proxy.dropped` counts."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.dropped = 0
        self.endpoint = ""
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    async def __aenter__(self) -> ConditionDroppingProxy:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers: dict[str, Any] = {}
        for name, value in request.headers.items():
            if name.lower() in CONDITIONS:
                self.dropped += 1
            elif name.lower() != "host":
                headers[name] = value
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                         headers=headers, data=body, allow_redirects=False) as upstream:
            payload = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")}
            return web.Response(status=upstream.status, headers=kept, body=payload)

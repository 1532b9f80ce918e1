"""A proxied generation stopped by its client closes its upstream connection, whatever the
order in which the handler's two cancel paths (disconnect callback, failed write) arrive.

The upstream is a real socket speaking chunked SSE to the real ``Remotes`` (httpx); it notes
when the proxy hangs up, which is how an upstream (vLLM, llama-server, lm_jupyter) learns to
stop generating.
"""

from __future__ import annotations

import asyncio

from lm_jupyter.engine.remote.turn import RemoteTurn
from lm_jupyter.engine.remote.upstream import Upstream
from lm_jupyter.engine.remote.upstreams import Remotes, RemoteTarget

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNK = b'data: {"object":"text_completion","choices":[{"index":0,"text":"x","finish_reason":null}]}\n\n'


class EndlessUpstream:
    """Streams completion chunks until the client goes away, and counts the hang-ups."""

    def __init__(self) -> None:
        self.hung_up = 0
        self.changed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                await writer.drain()
                await asyncio.sleep(0.005)
        except ConnectionError:
            self.hung_up += 1
            self.changed.set()
        finally:
            writer.close()


async def _second_cancel_at_every_step(steps: int) -> list[int]:
    upstream = EndlessUpstream()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    remotes = Remotes(lambda: [Upstream("up", f"http://127.0.0.1:{port}/v1", models=("m",))])
    left_open = []
    try:
        for step in range(steps):
            before = upstream.hung_up
            turn = RemoteTurn(
                remotes,
                RemoteTarget("m", "up", None),
                "/completions",
                {"model": "m", "prompt": "go", "stream": True},
                chat=False,
                reasoning_field=None,
                notify=lambda *args, **fields: None,
            )
            await turn.start()
            await anext(aiter(turn))
            first = asyncio.ensure_future(turn.cancel())  # the disconnect callback's
            for _ in range(step):  # the failed write's, `step` loop turns later
                await asyncio.sleep(0)
            await turn.cancel()
            await first
            while upstream.hung_up == before:
                upstream.changed.clear()
                try:
                    await asyncio.wait_for(upstream.changed.wait(), 5)
                except TimeoutError:
                    left_open.append(step)
                    break
    finally:
        await remotes.close()
        server.close()
    return left_open


def test_a_cancelled_turn_hangs_up_on_its_upstream_even_when_cancelled_twice() -> None:
    assert asyncio.run(_second_cancel_at_every_step(12)) == []

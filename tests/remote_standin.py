"""A stand-in OpenAI-compatible upstream for the failure modes real servers do not show on cue.

Run as its own process (``python tests/remote_standin.py PORT``) so a test can kill it mid-stream.
Each path prefix is one upstream with one behaviour:

- ``/boom/v1``: lists ``standin/boom`` and ``test/tiny-base``; every generation answers 500.
- ``/hang/v1``: lists ``standin/hang`` and ``test/tiny-tools``; generations never answer.
- ``/stall/v1``: lists ``test/tiny-chat``; a chat stream sends its role and one word, then
  nothing more, until the process is killed.
- ``/sized/v1``: lists ``standin/sized`` with vLLM's ``max_model_len`` (256), generations 500.

``GET /{prefix}/calls`` says how many generation requests that prefix received, so a test can
check that a failed upstream is skipped without timing anything.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tornado import web

LISTINGS = {
    "boom": [{"id": "standin/boom"}, {"id": "test/tiny-base"}],
    "hang": [{"id": "standin/hang"}, {"id": "test/tiny-tools"}],
    "stall": [{"id": "test/tiny-chat"}],
    "sized": [{"id": "standin/sized", "object": "model", "max_model_len": 256}],
}
STALLED_WORD = "partial"
CALLS = dict.fromkeys(LISTINGS, 0)


class Models(web.RequestHandler):
    def get(self, mode: str) -> None:
        self.finish({"object": "list", "data": LISTINGS[mode]})


class Calls(web.RequestHandler):
    def get(self, mode: str) -> None:
        self.finish({"calls": CALLS[mode]})


class Generate(web.RequestHandler):
    async def post(self, mode: str, _kind: str) -> None:
        CALLS[mode] += 1
        if mode == "hang":
            await asyncio.Event().wait()  # never set: the client's timeout ends it
        if mode == "stall":
            self.set_header("Content-Type", "text/event-stream")
            for delta in ({"role": "assistant", "content": ""}, {"content": STALLED_WORD}):
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                chunk = {"object": "chat.completion.chunk", "model": "test/tiny-chat", "choices": [choice]}
                self.write(f"data: {json.dumps(chunk)}\n\n")
                await self.flush()
            await asyncio.Event().wait()
        self.set_status(500)
        self.finish({"error": {"message": f"{mode}: the stand-in always fails", "type": "server_error"}})


async def main() -> None:
    port = int(sys.argv[1])
    app = web.Application(
        [
            (r"/(\w+)/v1/models", Models),
            (r"/(\w+)/calls", Calls),
            (r"/(\w+)/v1/(chat/completions|completions|embeddings)", Generate),
        ]
    )
    app.listen(port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

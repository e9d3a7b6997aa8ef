"""A language model for the overload benchmark, as its own process: OpenAI chat completions
answered after a fixed latency, every call counted by model.

    python -m bench.model_server --port 9300 --latency 0.2

`POST /v1/chat/completions` answers a persona model (its name contains "persona") with a
caller's question and any other model with a short answer, after `--latency` seconds;
`GET /stats` is `{"calls": n, "by_model": {model: n}, "in_flight": n, "max_in_flight": n}`;
`GET /healthz` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

QUESTION = "Question, please answer it."
ANSWER = "Here is a short answer to your question."
BACKLOG = 4096  # the executors open hundreds of connections at once


@dataclass
class Model:
    latency_s: float
    by_model: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    ids: itertools.count[int] = field(default_factory=itertools.count)

    async def complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = str(body.get("model", ""))
        self.by_model[model] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
        finally:
            self.in_flight -= 1
        text = QUESTION if "persona" in model else ANSWER
        return web.json_response(
            {
                "id": f"chatcmpl-{next(self.ids)}",
                "object": "chat.completion",
                "created": 1_790_000_000,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
            }
        )

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": sum(self.by_model.values()),
                "by_model": dict(self.by_model),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
            }
        )


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def model_app(latency_s: float) -> web.Application:
    model = Model(latency_s)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", model.complete)
    app.router.add_get("/stats", model.stats)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    args = parser.parse_args()
    web.run_app(model_app(args.latency), host="127.0.0.1", port=args.port, backlog=BACKLOG, access_log=None)


if __name__ == "__main__":
    main()

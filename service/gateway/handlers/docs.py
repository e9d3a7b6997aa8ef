"""`/openapi.json` and `/docs`: the document is built once per app from the endpoint table."""

from __future__ import annotations

import html
import json

from aiohttp import web
from markdown_it import MarkdownIt

from service.gateway.appkeys import ASYNCAPI, ENDPOINTS, OPENAPI
from service.gateway.handlers.responses import JSON

# CommonMark, as OpenAPI specifies for descriptions; raw HTML in them is shown, never run.
MARKDOWN = MarkdownIt("commonmark", {"html": False})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type=JSON)


async def asyncapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[ASYNCAPI], content_type=JSON)


async def page(request: web.Request) -> web.Response:
    """A self-contained page (no external assets) listing every endpoint, grouped by tag."""
    spec = json.loads(request.app[OPENAPI])
    sections: dict[str, list[str]] = {}
    for endpoint in request.app[ENDPOINTS].values():
        scope = f"<code>{html.escape(endpoint.scope)}</code>" if endpoint.scope else endpoint.access.value
        row = (
            f"<tr><td><b>{endpoint.method}</b></td><td><code>{html.escape(endpoint.path)}</code></td>"
            f"<td>{html.escape(endpoint.summary)}</td><td>{scope}</td></tr>"
        )
        sections.setdefault(endpoint.tag, []).append(row)
    body = "".join(
        f"<h2>{html.escape(tag)}</h2><table><tr><th>Method</th><th>Path</th><th>What</th><th>Needs</th></tr>"
        f"{''.join(rows)}</table>"
        for tag, rows in sections.items()
    )
    intro = MARKDOWN.render(spec["info"]["description"])
    text = (
        "<!doctype html><html><head><meta charset='utf-8'><title>agent-eval API</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;"
        "text-align:left}</style></head><body><h1>agent-eval API</h1>"
        f"{intro}<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1); "
        "the Kafka event stream: <a href='/asyncapi.json'>/asyncapi.json</a> (AsyncAPI 3.0).</p>"
        f"{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html")

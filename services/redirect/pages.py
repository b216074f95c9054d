"""The few HTML and text pages the edge renders. Everything interpolated is escaped."""

from __future__ import annotations

from html import escape

from aiohttp import web

_HTML = "text/html"
_NO_STORE = {"Cache-Control": "no-store"}

_NOT_FOUND = """<!doctype html><html><head><meta charset="utf-8"><title>Not found</title>
</head><body><h1>Not found</h1><p>This short link does not exist.</p></body></html>"""

_GONE = """<!doctype html><html><head><meta charset="utf-8"><title>Link expired</title>
</head><body><h1>Link expired</h1><p>This short link is no longer available.</p>
</body></html>"""

_UNLOCK_FORM = """<!doctype html><html><head><meta charset="utf-8">
<meta name="robots" content="noindex"><title>Password required</title></head><body>
<h1>This link is protected</h1>{message}
<form method="post" action="{action}">
<label>Password <input type="password" name="password" autofocus required></label>
<button type="submit">Continue</button></form></body></html>"""

_CLOAK = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>html,body,iframe{{margin:0;padding:0;border:0;width:100%;height:100%;}}</style>
</head><body><iframe src="{url}" title="{title}"></iframe></body></html>"""


def not_found_page() -> web.Response:
    return web.Response(status=404, text=_NOT_FOUND, content_type=_HTML)


def gone_page() -> web.Response:
    return web.Response(status=410, text=_GONE, content_type=_HTML)


def password_page(action: str, *, status: int = 200, message: str | None = None
                  ) -> web.Response:
    note = f"<p>{escape(message)}</p>" if message else ""
    text = _UNLOCK_FORM.format(action=escape(action, quote=True), message=note)
    return web.Response(status=status, text=text, content_type=_HTML, headers=_NO_STORE)


def cloak_page(url: str, title: str | None) -> web.Response:
    text = _CLOAK.format(url=escape(url, quote=True), title=escape(title or "", quote=True))
    return web.Response(text=text, content_type=_HTML)


def robots_txt(setting: str) -> web.Response:
    rules = "Disallow: /" if setting == "disallow" else "Allow: /"
    return web.Response(text=f"User-agent: *\n{rules}\n", content_type="text/plain")

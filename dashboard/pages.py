"""HTML shells of the pages (filled in by `static/dashboard.js`) and the offline API docs page.

Every value put into HTML here goes through `html.escape`; the shells carry ids, not data.
"""

from __future__ import annotations

from html import escape
from typing import Any

NAV = '<a class="brand" href="/">autopeft</a><nav><a href="/">Studies</a><a href="/docs">API</a></nav>'


def page(kind: str, title: str, params: dict[str, Any]) -> str:
    """A page shell: `kind` is studies, study or trial; `params` become `data-*` attributes of <body>."""
    data = " ".join(f'data-{escape(k)}="{escape(str(v))}"' for k, v in params.items())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · autopeft</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static-vendor/plotly.min.js" defer></script>
<script src="/static/dashboard.js" defer></script>
</head>
<body data-page="{escape(kind)}" {data}>
<header>{NAV}<span id="live" class="live" title="updates every few seconds"></span></header>
<main id="main"><p class="muted">Loading…</p></main>
</body>
</html>
"""


def docs_page(openapi: dict[str, Any]) -> str:
    """The JSON API reference rendered from the OpenAPI schema, without any external asset."""
    parts = [f"<h1>{escape(openapi['info']['title'])} — JSON API</h1>",
             f"<p>{escape(openapi['info'].get('description', ''))} "
             'The machine-readable schema is at <a href="/openapi.json">/openapi.json</a>.</p>']
    for path, methods in openapi.get("paths", {}).items():
        for method, op in methods.items():
            parts.append('<section class="card endpoint">')
            parts.append(f'<h2><span class="method">{escape(method.upper())}</span> <code>{escape(path)}</code></h2>')
            doc = op.get("description") or op.get("summary") or ""
            parts.append(f"<p>{escape(doc)}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><thead><tr><th>parameter</th><th>in</th><th>type</th><th>required</th>"
                             "<th>description</th></tr></thead><tbody>")
                for p in params:
                    schema = p.get("schema", {})
                    kind = schema.get("type") or " | ".join(s.get("type", s.get("$ref", "").rsplit("/", 1)[-1])
                                                            for s in schema.get("anyOf", []))
                    if "enum" in schema or "$ref" in schema:
                        ref = schema.get("$ref", "").rsplit("/", 1)[-1]
                        enum = schema.get("enum") or openapi.get("components", {}).get("schemas", {}).get(ref, {}).get("enum")
                        kind = " | ".join(map(str, enum or [])) or kind
                    if "pattern" in schema:
                        kind += f" ({schema['pattern']})"
                    parts.append(f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
                                 f"<td>{escape(str(kind))}</td><td>{'yes' if p.get('required') else ''}</td>"
                                 f"<td>{escape(p.get('description', ''))}</td></tr>")
                parts.append("</tbody></table>")
            parts.append("</section>")
    body = "\n".join(parts)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>API · autopeft</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css"></head>
<body><header>{NAV}</header><main class="docs">{body}</main></body>
</html>
"""



"""A FastAPI app served under a path prefix: run with `--root-path /api`
behind a proxy that strips `/api` (switchyard's `strip_prefix`), as
FastAPI's "Behind a Proxy" guide describes. Used by tests/nginx_fastapi.rs.
"""

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

app = FastAPI(title="prefixed")


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/items/")
def items(request: Request):
    return {
        "root_path": request.scope.get("root_path", ""),
        "forwarded_prefix": request.headers.get("x-forwarded-prefix"),
        "url": str(request.url),
    }


@app.get("/login")
def login(request: Request):
    # A redirect the app builds itself, from its own idea of its URL.
    return RedirectResponse(request.url_for("items"), status_code=303)

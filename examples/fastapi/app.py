"""A small FastAPI service to put behind switchyard in demos and tests.

Each instance says which colour and version it is, so a client can see where
the proxy sent it; it can be made unready or faulty on demand, so health
checks, rollbacks and canary judgement can be watched working.

Environment:
  APP_COLOR     colour of this deployment (blue, green, canary, ...); default "unknown"
  APP_VERSION   version string reported by /api/data; default "0.0.0"
  FAIL_RATE     fraction (0.0-1.0) of /api/data requests answered with 500; default 0
  DELAY_MS      extra latency added to every /api/data and /api/quote request, in ms; default 0
  QUOTE_CHANGE  what this version changes in /api/quote (for shadow traffic demos):
                "" (nothing, the default) or "discount" (items whose id is a
                multiple of 4 get 10 % off: one JSON field, a quarter of requests)
  FLAGS         JSON object of feature flags and their rollout percentage (0-100),
                replacing the built-in {"new_checkout": 20, "dark_mode": 50}

Endpoints:
  GET  /health        liveness: always 200 {"status": "ok"}
  GET  /ready         readiness: 200 when ready, 503 when not
  POST /admin/ready   {"ready": true|false}
  GET  /api/data      who answered, what it saw, and this user's feature flags
  GET  /api/quote/{item}  a price quote: the same for every version (but for
                      QUOTE_CHANGE), with per-answer fields (generated_at,
                      request_id, served_by) that a shadow comparison ignores
  GET  /admin/chaos   current fault injection settings
  POST /admin/chaos   {"fail_rate": 0.0-1.0, "delay_ms": int}

/admin/* has no authentication: it is for demos. Do not expose it to users.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import random
import socket
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from switchyard_bucket import BUCKETS, bucket as sticky_bucket

log = logging.getLogger("switchyard-example")

DEFAULT_FLAGS: dict[str, float] = {"new_checkout": 20, "dark_mode": 50}

USER_HEADER = "X-User-ID"
POOL_HEADER = "X-Switchyard-Pool"
BUCKET_HEADER = "X-Switchyard-Bucket"


def _env_float(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:  # also rejects nan
        raise SystemExit(f"{name}={raw!r} is out of range ({lo}..{hi})")
    return value


def _env_int(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise SystemExit(f"{name}={raw!r} is out of range ({lo}..{hi})")
    return value


def load_flags(raw: Optional[str]) -> dict[str, float]:
    """Parse the FLAGS environment variable (a JSON object of name -> percent)."""
    if raw is None or raw.strip() == "":
        return dict(DEFAULT_FLAGS)
    try:
        flags = json.loads(raw)
    except json.JSONDecodeError as err:
        raise SystemExit(f"FLAGS is not valid JSON: {err}") from None
    if not isinstance(flags, dict):
        raise SystemExit("FLAGS must be a JSON object, e.g. {\"new_checkout\": 20}")
    for name, percent in flags.items():
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
            raise SystemExit(f"FLAGS[{name!r}] must be a number from 0 to 100, got {percent!r}")
    return flags


class ChaosSettings(BaseModel):
    fail_rate: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False, description="fraction of /api/data answered with 500")
    delay_ms: int = Field(0, ge=0, le=600_000, description="extra latency for /api/data, in ms")


class ReadySettings(BaseModel):
    ready: bool


COLOR = os.environ.get("APP_COLOR", "unknown")
VERSION = os.environ.get("APP_VERSION", "0.0.0")
FLAGS = load_flags(os.environ.get("FLAGS"))
HOSTNAME = socket.gethostname()
QUOTE_CHANGE = os.environ.get("QUOTE_CHANGE", "")
if QUOTE_CHANGE not in ("", "discount"):
    raise SystemExit(f"QUOTE_CHANGE={QUOTE_CHANGE!r} must be empty or 'discount'")

# Per-process state. Under uvicorn with several workers each worker has its
# own; the example runs one worker per container.
state = {
    "ready": True,
    "chaos": ChaosSettings(
        fail_rate=_env_float("FAIL_RATE", 0.0, 0.0, 1.0),
        delay_ms=_env_int("DELAY_MS", 0, 0, 600_000),
    ),
}

app = FastAPI(title="switchyard example service", version=VERSION)


def request_bucket(request: Request) -> Optional[int]:
    """The sticky bucket of this request, or None when there is no key.

    The bucket the proxy computed (X-Switchyard-Bucket) is used when present
    and valid: the proxy may have keyed on a cookie rather than X-User-ID, and
    its answer is the one that decided the pool. Otherwise the bucket is
    computed from X-User-ID with the same scheme.
    """
    raw = request.headers.get(BUCKET_HEADER)
    if raw is not None:
        try:
            value = int(raw.strip())
        except ValueError:
            value = -1
        if 0 <= value < BUCKETS:
            return value
        log.warning("ignoring invalid %s header: %r", BUCKET_HEADER, raw)
    user_id = request.headers.get(USER_HEADER)
    if user_id:
        return sticky_bucket(user_id)
    return None


def flags_for(bucket_value: Optional[int]) -> dict[str, bool]:
    """A flag at P percent is on for buckets below P * 100 (of 10,000)."""
    if bucket_value is None:
        return {name: False for name in FLAGS}
    return {name: bucket_value < percent * 100 for name, percent in FLAGS.items()}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.get("/ready")
async def ready() -> JSONResponse:
    if state["ready"]:
        return JSONResponse({"status": "ready", "color": COLOR, "version": VERSION})
    return JSONResponse({"status": "not ready", "color": COLOR, "version": VERSION}, status_code=503)


@app.post("/admin/ready")
async def set_ready(settings: ReadySettings) -> dict:
    state["ready"] = settings.ready
    log.warning("readiness set to %s", settings.ready)
    return {"ready": state["ready"]}


@app.get("/admin/chaos")
async def get_chaos() -> ChaosSettings:
    return state["chaos"]


@app.post("/admin/chaos")
async def set_chaos(settings: ChaosSettings) -> ChaosSettings:
    state["chaos"] = settings
    log.warning("chaos set to fail_rate=%s delay_ms=%s", settings.fail_rate, settings.delay_ms)
    return settings


@app.get("/api/data")
async def api_data(request: Request) -> JSONResponse:
    chaos: ChaosSettings = state["chaos"]
    if chaos.delay_ms:
        await asyncio.sleep(chaos.delay_ms / 1000)
    if chaos.fail_rate and random.random() < chaos.fail_rate:
        return JSONResponse(
            {"error": "injected failure", "color": COLOR, "version": VERSION},
            status_code=500,
        )
    bucket_value = request_bucket(request)
    return JSONResponse(
        {
            "color": COLOR,
            "version": VERSION,
            "hostname": HOSTNAME,
            "pid": os.getpid(),
            "user_id": request.headers.get(USER_HEADER),
            "switchyard": {
                "pool": request.headers.get(POOL_HEADER),
                "bucket": request.headers.get(BUCKET_HEADER),
            },
            "bucket": bucket_value,
            "flags": flags_for(bucket_value),
        }
    )


def quote_price(item: int) -> int:
    """The price of an item in cents: deterministic, so two versions agree."""
    cents = 500 + (item * 7919) % 10_000
    if QUOTE_CHANGE == "discount" and item % 4 == 0:
        cents = cents * 9 // 10
    return cents


@app.get("/api/quote/{item}")
async def api_quote(item: int, request: Request) -> JSONResponse:
    chaos: ChaosSettings = state["chaos"]
    if chaos.delay_ms:
        await asyncio.sleep(chaos.delay_ms / 1000)
    return JSONResponse(
        {
            "item": item,
            "price_cents": quote_price(item),
            "currency": "EUR",
            "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "request_id": request.headers.get("X-Request-Id"),
            "served_by": {"color": COLOR, "version": VERSION},
        }
    )

"""switchyard's sticky-assignment scheme, in plain Python.

This module is the reference for the contract between switchyard and the
applications behind it: a user's key (the value of the sticky header or
cookie, e.g. ``X-User-ID``) maps to a bucket in 0..9999, and a bucket maps to a
pool for a given split. Every process, in any language, that implements the
same integer arithmetic gets the same answers, which is what lets an
application agree with the proxy about feature-flag cohorts. (Python's built-in
``hash()`` is salted per process and cannot be used for this.)

The scheme:

* ``fnv1a64``: 64-bit FNV-1a over the UTF-8 bytes of the key.
* ``fmix64``: the MurmurHash3 64-bit finaliser, to spread FNV's low bits.
* ``bucket(key) = fmix64(fnv1a64(key)) % 10000``.
* ``pool_for_bucket``: weighted rendezvous hashing. Each pool with weight > 0
  draws ``u`` in (0, 1) from ``fmix64(fnv1a64(pool name) ^ bucket * golden)``
  and scores ``weight / -ln(u)``; the highest score wins, the pool written
  first wins an exact tie. Raising one pool's weight while the others shrink in
  proportion only ever moves buckets *into* that pool, so nobody flaps between
  pools during a canary ramp.

All integer arithmetic is modulo 2**64.

Run ``python switchyard_bucket.py KEY...`` to print the bucket and pool of each
key (``--split blue=75,canary=25`` to choose the split).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Iterable, Mapping, Optional, Sequence, Tuple

MASK64 = (1 << 64) - 1

FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
GOLDEN_GAMMA = 0x9E3779B97F4A7C15

BUCKETS = 10_000

__all__ = [
    "BUCKETS",
    "fnv1a64",
    "fmix64",
    "bucket",
    "pool_for_bucket",
    "pool_for_key",
    "parse_split",
]


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a of ``data``."""
    h = FNV_OFFSET_BASIS
    for byte in data:
        h ^= byte
        h = (h * FNV_PRIME) & MASK64
    return h


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser (an invertible bit mixer)."""
    h &= MASK64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return h


def bucket(key: str) -> int:
    """The sticky bucket (0..9999) of ``key``."""
    return fmix64(fnv1a64(key.encode("utf-8"))) % BUCKETS


def _pool_items(split: Mapping[str, float] | Iterable[Tuple[str, float]]):
    return list(split.items()) if isinstance(split, Mapping) else list(split)


def pool_for_bucket(
    bucket_value: int,
    split: Mapping[str, float] | Iterable[Tuple[str, float]],
) -> Optional[str]:
    """The pool that ``bucket_value`` is assigned to under ``split``.

    ``split`` maps pool names to weights, in the order they are written in the
    configuration (a dict keeps insertion order; a list of pairs works too).
    Pools of weight 0 are never chosen. Returns None when no pool has a
    positive weight.
    """
    if not 0 <= bucket_value < BUCKETS:
        raise ValueError(f"bucket must be in 0..{BUCKETS - 1}, got {bucket_value}")
    salt = (bucket_value * GOLDEN_GAMMA) & MASK64
    best_pool: Optional[str] = None
    best_score = -math.inf
    for name, weight in _pool_items(split):
        if weight < 0:
            raise ValueError(f"weight of pool {name!r} is negative: {weight}")
        if weight == 0:
            continue
        x = fmix64(fnv1a64(name.encode("utf-8")) ^ salt)
        u = ((x >> 11) + 0.5) / 2.0**53  # uniform in (0, 1), never 0 or 1
        score = weight / -math.log(u)
        if score > best_score:  # strict: on an exact tie the earlier pool stays
            best_pool, best_score = name, score
    return best_pool


def pool_for_key(
    key: str, split: Mapping[str, float] | Iterable[Tuple[str, float]]
) -> Optional[str]:
    """The pool that ``key`` is assigned to under ``split``."""
    return pool_for_bucket(bucket(key), split)


def parse_split(text: str) -> dict[str, float]:
    """Parse ``"blue=90,canary=10"`` into ``{"blue": 90, "canary": 10}``."""
    split: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"expected NAME=WEIGHT, got {part!r}")
        if name in split:
            raise ValueError(f"pool {name!r} appears twice")
        value = float(weight)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of pool {name!r} must be a number >= 0, got {weight!r}")
        split[name] = int(value) if value.is_integer() else value
    if not split:
        raise ValueError("empty split")
    return split


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print switchyard's sticky bucket and pool for each key."
    )
    parser.add_argument("keys", nargs="+", metavar="KEY", help="sticky key, e.g. a user id")
    parser.add_argument(
        "--split",
        default="blue=90,canary=10",
        help="pool weights in configuration order (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        split = parse_split(args.split)
    except ValueError as err:
        parser.error(f"--split: {err}")
    width = max(len(k) for k in args.keys)
    for key in args.keys:
        b = bucket(key)
        print(f"{key:<{width}}  bucket={b:>4}  pool={pool_for_bucket(b, split)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

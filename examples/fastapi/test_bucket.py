"""Tests of switchyard's sticky scheme (switchyard_bucket.py).

Run with ``python -m pytest test_bucket.py`` or plainly with
``python test_bucket.py`` (no third-party packages needed for the latter).

The golden values below were cross-checked against independent C (glibc libm)
and Rust (``f64::ln``) implementations of the same scheme; a Rust port of the
scheme should reproduce them exactly.
"""

import switchyard_bucket as sb

KEYS = [f"user-{i}" for i in range(20_000)]


def test_fnv1a64_reference_vectors():
    assert sb.fnv1a64(b"") == 0xCBF29CE484222325
    assert sb.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert sb.fnv1a64(b"foobar") == 0x85944171F73967E8


def test_fmix64_edges():
    assert sb.fmix64(0) == 0
    # Masked to 64 bits whatever the input.
    assert sb.fmix64(2**64 + 5) == sb.fmix64(5)
    assert 0 <= sb.fmix64(2**64 - 1) < 2**64


def test_bucket_in_range_and_deterministic():
    for key in KEYS[:2_000] + ["", "a", "ünïcødé", "x" * 1_000]:
        b = sb.bucket(key)
        assert 0 <= b < sb.BUCKETS
        assert sb.bucket(key) == b


def test_golden_buckets_and_pools():
    # key -> (bucket, pool at blue 90/canary 10, pool at blue 50/canary 50)
    golden = {
        "": (4342, "canary", "canary"),
        "a": (8315, "blue", "canary"),
        "user-0": (7650, "blue", "canary"),
        "user-1": (5477, "blue", "blue"),
        "user-42": (1453, "blue", "canary"),
        "alice": (7236, "blue", "blue"),
        "ünïcødé": (5629, "canary", "canary"),
    }
    for key, (bucket, pool_90_10, pool_50_50) in golden.items():
        assert sb.bucket(key) == bucket, key
        assert sb.pool_for_bucket(bucket, {"blue": 90, "canary": 10}) == pool_90_10, key
        assert sb.pool_for_bucket(bucket, {"blue": 50, "canary": 50}) == pool_50_50, key


def test_golden_full_tables():
    # For each split: fnv1a64 of the string of pool initials for buckets
    # 0..9999, in bucket order. Covers every bucket in a few lines.
    golden = [
        ({"blue": 90, "canary": 10}, 16965395068021857982),
        ({"blue": 75, "canary": 25}, 4993550912736506719),
        ({"blue": 50, "green": 30, "canary": 20}, 4974010166671884806),
        ({"blue": 1, "green": 1, "canary": 1}, 3910447782248640259),
    ]
    for split, fingerprint in golden:
        table = "".join(sb.pool_for_bucket(b, split)[0] for b in range(sb.BUCKETS))
        assert sb.fnv1a64(table.encode()) == fingerprint, split


def test_split_90_10_gives_ten_percent_canary():
    split = {"blue": 90, "canary": 10}
    canary = sum(sb.pool_for_key(k, split) == "canary" for k in KEYS)
    share = 100.0 * canary / len(KEYS)
    assert abs(share - 10.0) <= 1.5, share


def test_three_way_split_shares():
    split = {"blue": 50, "green": 30, "canary": 20}
    counts = {name: 0 for name in split}
    for b in range(sb.BUCKETS):
        counts[sb.pool_for_bucket(b, split)] += 1
    for name, weight in split.items():
        share = 100.0 * counts[name] / sb.BUCKETS
        assert abs(share - weight) <= 1.5, (name, share)


def test_raising_canary_only_moves_keys_into_canary():
    steps = [
        {"blue": 90, "canary": 10},
        {"blue": 75, "canary": 25},
        {"blue": 50, "canary": 50},
    ]
    previous = {k: sb.pool_for_key(k, steps[0]) for k in KEYS}
    for split in steps[1:]:
        current = {k: sb.pool_for_key(k, split) for k in KEYS}
        back_to_blue = [k for k in KEYS if previous[k] == "canary" and current[k] == "blue"]
        assert not back_to_blue, (split, back_to_blue[:5])
        moved_in = sum(previous[k] == "blue" and current[k] == "canary" for k in KEYS)
        assert moved_in > 0, split
        previous = current


def test_weight_zero_and_empty_split():
    for b in range(0, sb.BUCKETS, 7):
        assert sb.pool_for_bucket(b, {"canary": 0, "blue": 100, "green": 0}) == "blue"
    assert sb.pool_for_bucket(0, {"blue": 0, "canary": 0}) is None


def test_order_breaks_exact_ties():
    # Same name twice with the same weight gives the same score: first wins.
    pairs_first = [("blue", 1), ("blue", 1)]
    assert sb.pool_for_bucket(123, pairs_first) == "blue"
    # A pool's own score does not depend on the others, so the assignment
    # does not depend on the order of pools with distinct scores.
    for b in range(0, sb.BUCKETS, 13):
        a = sb.pool_for_bucket(b, [("blue", 60), ("green", 40)])
        c = sb.pool_for_bucket(b, [("green", 40), ("blue", 60)])
        assert a == c


def test_bucket_out_of_range_is_rejected():
    for bad in (-1, sb.BUCKETS):
        try:
            sb.pool_for_bucket(bad, {"blue": 1})
        except ValueError:
            pass
        else:
            raise AssertionError(f"bucket {bad} accepted")


def test_parse_split():
    assert sb.parse_split("blue=90, canary=10") == {"blue": 90, "canary": 10}
    assert list(sb.parse_split("canary=10,blue=90")) == ["canary", "blue"]
    assert sb.parse_split("blue=12.5") == {"blue": 12.5}
    for bad in ("", "blue", "blue=-1", "blue=1,blue=2", "=3", "blue=nan"):
        try:
            sb.parse_split(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{bad!r} accepted")


if __name__ == "__main__":
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    for name, fn in tests:
        fn()
        print(f"ok  {name}")
    print(f"{len(tests)} passed, 0 failed")

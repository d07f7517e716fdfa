"""Per-key token buckets shared through the data directory (``faceprint.ratelimit``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceprint import ratelimit
from faceprint.ratelimit import RateLimits


def test_a_burst_then_the_rate_and_each_key_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    limits = RateLimits(tmp_path, rate=2.0, burst=3)
    assert [limits.take("a") for _ in range(3)] == [0, 0, 0]
    assert limits.take("a") == pytest.approx(0.5)  # one token comes back every 1/rate seconds
    assert limits.take("b") == 0
    now[0] += 0.5
    assert limits.take("a") == 0
    assert limits.take("a") > 0
    now[0] += 100  # idle: the bucket fills up to the burst, no further
    assert [limits.take("a") for _ in range(4)][-1] > 0


def test_processes_share_the_buckets_and_a_clock_set_back_refills_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    first, second = RateLimits(tmp_path, 1.0, 2), RateLimits(tmp_path, 1.0, 2)
    assert (first.take("k"), second.take("k")) == (0, 0)
    assert first.take("k") > 0 and second.take("k") > 0
    now[0] -= 3600
    assert first.take("k") > 0


def test_a_rate_limit_needs_a_rate_and_a_burst(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimits(tmp_path, 0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        RateLimits(tmp_path, 1.0, 0)

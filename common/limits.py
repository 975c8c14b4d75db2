"""Per-connection rate limits: token buckets over audio seconds and messages."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``rate`` units per second on average and bursts of up to ``burst``.

    A rate of 0 disables the bucket (everything is allowed).
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount``; False (and nothing spent) when that would exceed the limit."""
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True

    def wait_time(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` could be taken (0 when it can be now)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        return max(0.0, (amount - tokens) / self.rate)


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps a server to this machine (``localhost``, 127.0.0.0/8,
    ``::1`` with or without brackets, any case)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

"""One reconnect/retry backoff for every service: jittered exponential, capped, resettable.

Pure standard library: the Raspberry Pi agent imports it with only its base install.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``base_s`` up to ``cap_s``, each drawn at random below its
    ceiling so that many clients cut off together do not come back together.

    ``next_delay()`` is uniform in [max(base_s, ceiling * (1 - jitter)), ceiling] with
    ceiling = min(cap_s, base_s * 2**attempt): ``jitter=1`` is "full jitter" (never below
    ``base_s``), ``jitter=0.5`` keeps at least half of the ceiling, ``jitter=0`` none.
    ``reset()`` after a success starts again from ``base_s``.
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0, *, jitter: float = 1.0,
                 rng: random.Random | None = None) -> None:
        if base_s <= 0:
            raise ValueError(f"base_s must be > 0 (got {base_s!r})")
        if cap_s < base_s:
            raise ValueError(f"cap_s must be >= base_s (got {cap_s!r} < {base_s!r})")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1 (got {jitter!r})")
        self.base_s, self.cap_s, self.jitter = base_s, cap_s, jitter
        self.attempt = 0
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self) -> float:
        """The largest delay the next ``next_delay()`` may return."""
        return min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 64))

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        self.attempt += 1
        low = max(self.base_s, ceiling * (1.0 - self.jitter))
        return self._rng.uniform(min(low, ceiling), ceiling)

    def reset(self) -> None:
        self.attempt = 0

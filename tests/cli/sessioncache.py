# SPDX-License-Identifier: MIT
"""The leak of tests/cli/leaky_service.py: a module-level cache that only
ever grows.  The test looks for this module's name at the end of the
referrer chain of a leaked Session."""

CACHE = []


class Session:
    def __init__(self, n):
        self.n = n * 1000 + 7           # an int of its own (> 256)
        self.user = None


def remember(n):
    """Creates n Sessions and caches them; no reference stays anywhere
    else (no local, no frame), so the cache is their only holder."""
    CACHE.extend(Session(len(CACHE) + i) for i in range(n))

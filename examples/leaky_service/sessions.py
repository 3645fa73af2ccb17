"""The service's session layer, and its bug.

Every request gets a Session; `remember()` files it in a module-level
cache so that a follow-up request could find it again.  Nothing ever
evicts it: the cache, and the memory, grow with every request.
"""

import itertools
import time

_ids = itertools.count(1)

# The leak: request id -> Session, never evicted.
_CACHE = {}


class Session:
    def __init__(self, user, path):
        self.id = next(_ids)
        self.user = user
        self.path = path
        self.started = time.time()
        self.headers = {"user-agent": "load/1.0", "accept": "*/*"}
        self.scratch = bytearray(512)       # per-request buffer


def remember(session):
    _CACHE[session.id] = session
    return session

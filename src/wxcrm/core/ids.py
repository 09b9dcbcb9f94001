"""24-hex ObjectId-style ids, as the original MongoDB system used and the mini program expects."""

from __future__ import annotations

import itertools
import os
import re
import threading
import time

OBJECT_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")

# Same layout as a MongoDB ObjectId: 4 bytes of seconds, 5 random bytes per process,
# 3 bytes of a counter. Unique across processes without any coordination.
_process_random = os.urandom(5)
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
_counter_lock = threading.Lock()
_pid = os.getpid()


def new_id() -> str:
    global _process_random, _pid
    if os.getpid() != _pid:  # forked: a child must not share its parent's random part
        _pid, _process_random = os.getpid(), os.urandom(5)
    with _counter_lock:
        count = next(_counter) & 0xFFFFFF
    return (int(time.time()).to_bytes(4, "big") + _process_random + count.to_bytes(3, "big")).hex()


def is_object_id(value: object) -> bool:
    return isinstance(value, str) and OBJECT_ID_PATTERN.fullmatch(value) is not None

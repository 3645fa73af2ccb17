# SPDX-License-Identifier: MIT
"""A service that leaks: every 50 ms it caches 40 more Session objects in
sessioncache.CACHE and never drops one, while meliae streams a snapshot of
it to meliae-monitord every second.

    python3 leaky_service.py SOCKET

Prints "streaming" once the streamer is set up; runs until killed or its
stdin closes.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sessioncache  # noqa: E402  (only through the module: one holder)
from meliae import scanner  # noqa: E402


def main():
    st = scanner.stream_to(sys.argv[1], interval=1, label="leaky")
    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("streaming", flush=True)
    while not done.wait(0.05):
        sessioncache.remember(40)
    st.close()


if __name__ == "__main__":
    main()

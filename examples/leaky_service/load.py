"""Drive the demo service: `python3 load.py PORT SECONDS` sends GET
requests from 4 threads for SECONDS and prints how many succeeded."""

import sys
import threading
import time
import urllib.request

port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
done = [0] * 4


def worker(k):
    n = 0
    while time.monotonic() < end:
        with urllib.request.urlopen(
                "http://127.0.0.1:%d/hello?user=u%d" % (port, n % 50)) as r:
            r.read()
        n += 1
        time.sleep(0.002)
    done[k] = n


# daemon threads: Ctrl-C (KeyboardInterrupt in the main thread) ends the
# client at once instead of after the load's end
threads = [threading.Thread(target=worker, args=(k,), daemon=True)
           for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("load: %d requests in %.0f s" % (sum(done), seconds), flush=True)

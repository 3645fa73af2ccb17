"""A small HTTP service with a leak, for the meliae demo.

    python3 service.py PORT SOCKET [INTERVAL]

Serves GET /hello?user=NAME on 127.0.0.1:PORT (standard library only) and
streams a heap snapshot to meliae-monitord on SOCKET every INTERVAL
seconds (default 3), without values (meliae.scanner.stream_to's default).
"""

import json
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from meliae import scanner

import sessions


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        user = urllib.parse.parse_qs(url.query).get("user", ["anon"])[0]
        s = sessions.remember(sessions.Session(user, url.path))
        body = json.dumps({"hello": user, "session": s.id}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port, sock = int(sys.argv[1]), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 3
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    streamer = scanner.stream_to(sock, interval=interval, label="demo-web")
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(
        target=server.shutdown).start())
    print("service: listening on 127.0.0.1:%d" % server.server_address[1],
          flush=True)
    try:
        server.serve_forever()
    finally:
        streamer.close()
        server.server_close()


if __name__ == "__main__":
    main()

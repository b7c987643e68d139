"""A local Slack-compatible webhook receiver on loopback, for alert tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "T000/B000/XXXXsecretTOKENxxxx"


class Receiver:
    """A local webhook: records each POST; answers with the status codes it is given, then 200."""

    def __init__(self):
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.paths.append(self.path)
                receiver.posts.append({"status": status, "json": json.loads(body),
                                       "content_type": self.headers["Content-Type"]})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/{SECRET}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

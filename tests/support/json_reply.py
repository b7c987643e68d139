"""How the loopback stand-ins answer: a JSON body with its headers; a client that already left is not an error."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def send_json(handler: BaseHTTPRequestHandler, status: int, payload, headers: dict,
              gone: tuple[type[BaseException], ...] = (BrokenPipeError, ConnectionResetError)) -> None:
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except gone:  # the client timed out and left
        pass

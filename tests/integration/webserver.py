"""A local HTTP server for the tests: routes are functions, every request is
recorded (method, path, headers, body, start and end times)."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Request:
    def __init__(self, method, path, headers, body, start):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.start, self.end = start, None


class Web:
    def __init__(self, host="127.0.0.1"):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, self.path, dict(self.headers), body, time.monotonic())
                with web.lock:
                    web.requests.append(req)
                    web.in_flight += 1
                    web.max_in_flight = max(web.max_in_flight, web.in_flight)
                try:
                    route = web.routes.get(self.path.split("?")[0])
                    if route is None:
                        self.reply(404, "text/plain", b"no such route")
                    else:
                        route(self, req)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    req.end = time.monotonic()
                    with web.lock:
                        web.in_flight -= 1

            do_GET = do_PUT = do_POST = handle_any

            def reply(self, status, ctype, body, headers=()):
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256
            address_family = socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, host=None):
        return f"http://{host or self.host}:{self.port}{path}"

    def route(self, path, fn):
        self.routes[path] = fn

    def static(self, path, ctype, body, status=200):
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = lambda h, req: h.reply(status, ctype, data)

    def got(self, path, method=None):
        with self.lock:
            return [r for r in self.requests
                    if r.path.split("?")[0] == path and (method is None or r.method == method)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

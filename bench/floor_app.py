"""The floor: a trivial WSGI app served by the same gunicorn settings as paddles.

`GET ...?bytes=N` answers N bytes instead of `{}`: the floor for moving a document as large
as a run summary (what the client and the kernel spend on the bytes alone)."""
from urllib.parse import parse_qs

_FILLER: dict[int, bytes] = {}


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    size = parse_qs(environ.get("QUERY_STRING", "")).get("bytes")
    body = b"{}"
    if size:
        n = int(size[0])
        body = _FILLER.get(n) or _FILLER.setdefault(n, b'"' + b"x" * max(0, n - 2) + b'"')
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

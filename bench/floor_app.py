"""The floor: a trivial WSGI app served by the same gunicorn settings as paddles.

`GET ...?bytes=N` answers N bytes instead of `{}`: the floor for moving a document as large
as a run summary (what the client and the kernel spend on the bytes alone).

A request whose path starts with `/update/` answers `{}` after ONE PostgreSQL UPDATE,
committed synchronously, on a connection of the worker thread's own (psycopg2, the database
of $PADDLES_DATABASE_URL): the floor of a write. The row is picked by the path's last
segment among FLOOR_ROWS rows of a table of its own (created by `prepare_update_floor`), so
eight clients hardly ever wait on each other's row: what is measured is gunicorn, one round
trip of SQL and one WAL flush per request, which any acknowledged durable write needs."""
import os
import threading
from urllib.parse import parse_qs

_FILLER: dict[int, bytes] = {}
FLOOR_TABLE = "bench_floor_rows"
FLOOR_ROWS = 1024
_local = threading.local()


def _dsn() -> str:
    url = os.environ["PADDLES_DATABASE_URL"]
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def prepare_update_floor(dsn: str) -> None:
    """The table the one-UPDATE floor writes (call once before serving it)."""
    import psycopg2
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} "
                    "(id integer PRIMARY KEY, n bigint NOT NULL, updated timestamptz)")
        cur.execute(f"INSERT INTO {FLOOR_TABLE} (id, n) SELECT g, 0 FROM "
                    f"generate_series(0, {FLOOR_ROWS - 1}) g ON CONFLICT DO NOTHING")
    conn.close()


def _update(path: str) -> None:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        import psycopg2
        conn = _local.conn = psycopg2.connect(_dsn())
    key = path.rstrip("/").rsplit("/", 1)[-1]
    row = (int(key) if key.isdigit() else hash(key)) % FLOOR_ROWS
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {FLOOR_TABLE} SET n = n + 1, updated = now() WHERE id = %s",
                    (row,))
    conn.commit()


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    path = environ.get("PATH_INFO", "")
    if path.startswith("/update/"):
        _update(path)
    size = parse_qs(environ.get("QUERY_STRING", "")).get("bytes")
    body = b"{}"
    if size:
        n = int(size[0])
        body = _FILLER.get(n) or _FILLER.setdefault(n, b'"' + b"x" * max(0, n - 2) + b'"')
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

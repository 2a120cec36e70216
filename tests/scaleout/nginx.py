"""nginx from Debian's package in front of paddles instances, as nginx_paddles.conf says.

The repo's nginx_paddles.conf (the configuration docs/deploy.md and docs/scaling.md show)
is used as it is, with only its `server` and `listen` addresses replaced, inside a main
configuration of our own: prefix, pid, logs and temporary files in a directory of the
caller's, free ports, run in the foreground as a child of the caller. /etc/nginx and any
system nginx service are never touched. Used by tests/scaleout/ and bench/run.py.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from collections.abc import Iterator, Sequence

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "nginx_paddles.conf"
CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

_SERVER = re.compile(r"^(\s*)server\s+\S+:\d+(\s.*)?;$", re.M)
_LISTEN = re.compile(r"^(\s*)listen\s+\S+;$", re.M)


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def site_config(backends: Sequence[str], listen: str) -> str:
    """nginx_paddles.conf with its upstream servers replaced by `backends` (HOST:PORT each,
    keeping the template's per-server parameters) and its `listen` by `listen`."""
    text = TEMPLATE.read_text()
    servers = list(_SERVER.finditer(text))
    if not servers or len(_LISTEN.findall(text)) != 1:
        raise ValueError(f"{TEMPLATE} no longer has the server and listen lines expected")
    indent, params = servers[0].group(1), servers[0].group(2) or ""
    lines = "\n".join(f"{indent}server {b}{params};" for b in backends)
    text = text[:servers[0].start()] + lines + text[servers[-1].end():]
    return _LISTEN.sub(lambda m: f"{m.group(1)}listen {listen};", text)


def main_config(workdir: Path, site: Path, workers: int) -> str:
    """The main context around the site file: everything nginx writes lives in `workdir`."""
    user = ""
    if os.geteuid() == 0:  # else nginx's workers would become `nobody`
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n"
    temp = "\n".join(f"    {kind}_temp_path {workdir / (kind + '_temp')};"
                     for kind in ("client_body", "proxy"))
    return (f"{user}daemon off;\nworker_processes {workers};\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {workdir / 'access.log'};\n{temp}\n"
            f"    include {site};\n"
            "}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def balancer(backends: Sequence[str], workdir: Path, *,
             workers: int = 1) -> Iterator[str]:
    """nginx balancing over `backends` (HOST:PORT) until the block ends: yields its base URL.
    RuntimeError when nginx is not installed or does not start."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = workdir / "paddles.conf"
    site.write_text(site_config(backends, f"127.0.0.1:{port}"))
    conf = workdir / "nginx.conf"
    conf.write_text(main_config(workdir, site, workers))
    check = subprocess.run([binary, "-t", "-p", str(workdir), "-c", str(conf),
                            "-e", str(workdir / "error.log")], capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
    proc = subprocess.Popen([binary, "-p", str(workdir), "-c", str(conf),
                             "-e", str(workdir / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start: "
                                   + proc.stderr.read().decode(errors="replace")[-2000:])
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

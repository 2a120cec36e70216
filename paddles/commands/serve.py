"""`paddles serve`: run the API with gunicorn and gunicorn_config.py (migrating first)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import migrations


def register(sub):
    parser = sub.add_parser("serve", help="serve the API (gunicorn)", description=__doc__)
    parser.add_argument("--host", help="bind address (default: settings server_host)")
    parser.add_argument("--port", type=int, help="port (default: settings server_port)")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not upgrade the schema before serving")
    return parser


def run(args, settings) -> int:
    if not args.no_migrate:
        migrations.upgrade(settings.database_url)
    host = args.host or settings.server_host
    port = args.port or settings.server_port
    env = dict(os.environ, PADDLES_DATABASE_URL=settings.database_url,
               PADDLES_BIND=f"{host}:{port}")
    config = Path(__file__).resolve().parents[2] / "gunicorn_config.py"
    argv = [sys.executable, "-m", "gunicorn", "paddles.wsgi:application"]
    if config.exists():
        argv[3:3] = ["-c", str(config)]
    print(f"serving on http://{host}:{port}/", file=sys.stderr)
    os.execve(sys.executable, argv, env)
    return 0

"""The `paddles` command: one subcommand per module in this package.

Each module has `register(subparsers)` returning its parser and `run(args, settings)`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..logs import configure_logging
from ..settings import load_settings

COMMANDS = ("migrate", "serve", "expire-jobs", "set-status", "reparse", "set-targets",
            "delete-run", "dedupe", "import-nodes", "node-jobs", "node-stats", "queue-stats",
            "purge", "bench-seed", "export", "dispatch", "check-config", "token")

EPILOG = """\
Upstream `pecan <command> config.py` equivalents: populate -> migrate (creates or upgrades
the schema with alembic, no separate stamp), expire_jobs -> expire-jobs, set_status ->
set-status, set_targets -> set-targets, delete -> delete-run, node_jobs -> node-jobs,
node_stats -> node-stats, queue_stats -> queue-stats; reparse and dedupe keep their names.
import-nodes reads a YAML/JSON node list (upstream's import_nodes read the retired lock
server). get_secret is gone: the database URL comes from $PADDLES_DATABASE_URL or the
config file. Commands that change data take --dry-run. Exit codes: 0 done, 1 failed,
2 bad command line. Data goes to stdout, progress and summaries to stderr.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paddles", description="paddles: a JSON results server for test labs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"paddles {__version__}")
    parser.add_argument("-c", "--config", help="config.py to read (default: $PADDLES_CONFIG, "
                                               "then ./config.py if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        sub_parser = module.register(sub)
        sub_parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep paragraphs
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging("DEBUG" if args.verbose else settings.log_level, settings.log_format)
    except (OSError, ValueError, SyntaxError) as exc:  # a bad config file or variable
        print(f"paddles {args.command}: configuration error: {exc}", file=sys.stderr)
        return 1
    try:
        return args._run(args, settings) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear line, not a traceback, for expected failures
        logging.getLogger("paddles").debug("command failed", exc_info=True)
        print(f"paddles {args.command}: error: {exc}", file=sys.stderr)
        return 1

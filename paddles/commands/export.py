"""`paddles export`: the HTTP exports (/exports/...), written to a file or stdout.

    paddles export runs [--branch B] [--status S] [--since DAY] ... [-f csv|json|jsonl]
    paddles export jobs RUN [--status S] [-f csv|json|jsonl]
    paddles export tests RUN [--status S] [-f csv|json|junit.xml|subunit]
    paddles export stackviz RUN [--gzip] [--layout current|legacy]

Same code as the HTTP routes (paddles.services.exports), so the bytes are the same. Without
--format the format comes from the -o file name's suffix, else CSV (stackviz: tar.gz).
Without -o (or with -o -) the export goes to stdout; a file is written under a temporary
name and renamed when complete, so a failed export leaves no partial file. On a terminal,
progress goes to stderr. Formats and columns: docs/exports.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from .. import filters
from ..db import make_engine, make_session_factory
from ..models.artifacts import TEST_STATUS_VALUES
from ..models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from ..services import exports as export_service
from ..services import stackviz as stackviz_service
from ..storage import make_blob_store

BINARY_FORMATS = ("subunit", "tar.gz")


def register(sub):
    parser = sub.add_parser("export", help="export runs, jobs, test results or a stackviz "
                                           "dataset (CSV, JSON, JUnit, subunit, tar.gz)",
                            description=__doc__)
    kinds = parser.add_subparsers(dest="what", metavar="WHAT")
    kinds.required = True

    runs = kinds.add_parser("runs", help="runs matching the filters, newest first")
    for name in (name for name in filters.QUERY_FILTERS if name != "status"):
        runs.add_argument("--" + name.replace("_", "-"), dest=name, metavar="VALUE",
                          help=f"only runs with this {name}"
                          + (" prefix (of any job)" if name == "sha1" else ""))
    runs.add_argument("--status", choices=RUN_STATUS_VALUES, help="only runs in this status")
    runs.add_argument("--since", metavar="DAY|TIME",
                      help="scheduled from this day (YYYY-MM-DD, today, yesterday) or time")
    runs.add_argument("--until", metavar="DAY|TIME",
                      help="scheduled through this day (inclusive) or up to this time")

    for kind, statuses, what in (("jobs", JOB_STATUS_VALUES, "jobs"),
                                 ("tests", TEST_STATUS_VALUES, "test cases")):
        p = kinds.add_parser(kind, help=f"the {what} of one run")
        p.add_argument("run", help="run name")
        p.add_argument("--status", choices=statuses, help=f"only {what} with this status")
    stackviz = kinds.add_parser("stackviz", help="a stackviz dataset of one run, as tar.gz")
    stackviz.add_argument("run", help="run name")
    stackviz.add_argument("--gzip", action="store_true",
                          help="gzip the data files inside (stackviz-export --gzip)")
    stackviz.add_argument("--layout", choices=stackviz_service.LAYOUTS, default="current",
                          help="current: what today's stackviz front end reads (default); "
                               "legacy: the pre-2016 layout")

    for p in (runs, *(kinds.choices[k] for k in ("jobs", "tests", "stackviz"))):
        kind = p.prog.rsplit(" ", 1)[-1]
        p.add_argument("-f", "--format", choices=export_service.FORMATS[kind],
                       help="output format (default: from the -o suffix, else "
                            f"{export_service.FORMATS[kind][0]})")
        p.add_argument("-o", "--output", metavar="FILE",
                       help="write here instead of stdout ('-': stdout)")
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress on stderr (default: when stderr is a terminal)")
    return parser


def _format(args) -> str:
    formats = export_service.FORMATS[args.what]
    if args.format:
        return args.format
    if args.output and args.output != "-":
        name = Path(args.output).name
        for fmt in sorted(formats, key=len, reverse=True):
            if name.endswith("." + fmt):
                return fmt
    return formats[0]


def _build(args, settings, session, fmt):
    if args.what == "runs":
        params = {key: getattr(args, key)
                  for key in filters.QUERY_FILTERS + filters.QUERY_BOUNDS
                  if getattr(args, key, None) is not None}
        return export_service.export_runs(session, fmt, filters.parse_query(params))
    if args.what == "jobs":
        return export_service.export_jobs(session, settings, args.run, fmt, args.status)
    if args.what == "tests":
        return export_service.export_tests(session, settings, args.run, fmt, args.status)
    return stackviz_service.export_stackviz(session, make_blob_store(settings), args.run,
                                            compress=args.gzip, layout=args.layout)


class _Progress:
    """`rows` callback plus byte counting; one stderr line rewritten at most 10 times a
    second, ended with a newline."""

    def __init__(self, label: str, total: int | None, stream):
        self.label, self.total, self.stream = label, total, stream
        self.rows = self.bytes = 0
        self.started = self.last = time.monotonic()

    def __call__(self, rows: int) -> None:
        self.rows = rows
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self._show("\r")

    def _show(self, end: str) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        pct = f" ({100 * self.rows // self.total}%)" if self.total else ""
        line = (f"{self.label}: {self.rows}{of} rows{pct}, {self.bytes / (1 << 20):.1f} MiB, "
                f"{time.monotonic() - self.started:.1f}s")
        clear = "\x1b[K" if self.stream.isatty() else ""  # erase the rest of a longer line
        self.stream.write(f"\r{line}{clear}" + ("" if end == "\r" else end))
        self.stream.flush()

    def done(self) -> None:
        self._show("\n")


def run(args, settings) -> int:
    fmt = _format(args)
    to_stdout = not args.output or args.output == "-"
    if to_stdout and fmt in BINARY_FORMATS and sys.stdout.isatty():
        print(f"paddles export: refusing to write {fmt} to a terminal; use -o FILE or "
              "redirect stdout", file=sys.stderr)
        return 2
    show = sys.stderr.isatty() if args.progress is None else args.progress
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        with make_session_factory(engine)() as session:
            export = _build(args, settings, session, fmt)
            progress = _Progress(f"export {args.what}", export.count() if show else None,
                                 sys.stderr) if show else None
            if to_stdout:
                _write(export, sys.stdout.buffer, progress)
            else:
                _write_file(export, Path(args.output), progress)
            if progress is not None:
                progress.done()
    finally:
        engine.dispose()
    return 0


def _write(export, out, progress) -> None:
    for chunk in export.chunks(progress):
        out.write(chunk)
        if progress is not None:
            progress.bytes += len(chunk)
    out.flush()


def _write_file(export, path: Path, progress) -> None:
    """Into a temporary file beside `path`, renamed over it when complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                               dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as out:
            _write(export, out, progress)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would have made it
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

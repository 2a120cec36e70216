"""Every command answers --help with exit 0, in-process and through the console script."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paddles.commands import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "populate -> migrate" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"usage: paddles {command}" in capsys.readouterr().out


WRITERS = ("expire-jobs", "set-status", "reparse", "set-targets", "delete-run", "dedupe",
           "import-nodes")


@pytest.mark.parametrize("command", WRITERS)
def test_commands_that_change_data_offer_a_dry_run(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--dry-run" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pupulate"])
    assert exc.value.code == 2


def _console_script() -> str:
    beside = Path(sys.executable).with_name("paddles")
    return str(beside) if beside.exists() else shutil.which("paddles")


def test_installed_console_script_help():
    script = _console_script()
    assert script, "the paddles console script is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLES_")}
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "expire-jobs" in done.stdout and "import-nodes" in done.stdout
    done = subprocess.run([script, "node-stats", "--help"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0 and "--machine-type" in done.stdout


def test_progress_lines_only_for_many_items():
    import io

    from paddles.commands._common import Progress
    quiet = io.StringIO()
    progress = Progress("few", stream=quiet)
    for done in range(1, 11):
        progress(done, 10)
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    progress = Progress("many", stream=loud)
    for done in range(100, 5001, 100):
        progress(done, 5000)
    lines = loud.getvalue().splitlines()
    assert 10 <= len(lines) <= 21
    assert lines[-1].startswith("many: 5000/5000 (100%)")

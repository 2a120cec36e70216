"""Files paddles reads at run time that live at the top of the repository.

`alembic/` (the migrations) and `gunicorn_config.py` (what `paddles serve` hands gunicorn)
stay where the project's layout puts them; in a checkout (an editable install) they are read
there. A built wheel carries copies under `paddles/_data/` (setup.py's build_py adds them,
with config.py.in and alembic.ini.in as templates), so an installed package needs no checkout.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
PACKAGED = PACKAGE / "_data"
# what setup.py copies into the wheel, relative to the top of the repository
SHIPPED = ("alembic/env.py", "alembic/script.py.mako", "alembic/versions/*.py",
           "gunicorn_config.py", "config.py.in", "alembic.ini.in")


def is_checkout() -> bool:
    """paddles runs from its source tree (not from site-packages): setup.py is beside it."""
    return (CHECKOUT / "setup.py").is_file() and (CHECKOUT / "alembic.ini.in").is_file()


def path(name: str) -> Path:
    """`name` (e.g. "alembic", "gunicorn_config.py") in the checkout, else in the package."""
    for base in ((CHECKOUT, PACKAGED) if is_checkout() else (PACKAGED,)):
        if (base / name).exists():
            return base / name
    raise FileNotFoundError(f"{name} is neither in a paddles checkout nor in the installed "
                            f"package ({PACKAGED}): reinstall paddles")

import glob
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Files read at run time that stay at the top of the repository (the project's layout):
# a wheel carries copies under paddles/_data/, where paddles/resources.py finds them once
# installed. Keep this list equal to paddles.resources.SHIPPED (tests/deploy/test_wheel.py).
SHIPPED = ("alembic/env.py", "alembic/script.py.mako", "alembic/versions/*.py",
           "gunicorn_config.py", "config.py.in", "alembic.ini.in")


class BuildWithRepoFiles(build_py):
    """build_py, plus the migrations, gunicorn_config.py and the templates as package data."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout
            return
        here = os.path.dirname(os.path.abspath(__file__))
        for pattern in SHIPPED:
            names = sorted(glob.glob(os.path.join(here, pattern)))
            if not names:
                raise FileNotFoundError(f"{pattern}: nothing to package")
            for name in names:
                target = os.path.join(self.build_lib, "paddles", "_data",
                                      os.path.relpath(name, here))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(name, target)


setup(
    name="paddles",
    version="0.1.0",
    description="A JSON results server for test labs, wire-compatible with Ceph's paddles",
    python_requires=">=3.11",
    packages=find_packages(include=["paddles", "paddles.*"]),
    install_requires=[
        # pinned to a minor version: paddles relies on their internals (pecan_speedups.py,
        # controllers/base.py, pg.py; tests/unit/test_internals.py says what to re-check).
        # WebOb 1.8.9 and later depend on legacy-cgi on Python 3.13, which removed the cgi
        # module WebOb imports (Pylons/webob#469)
        "pecan>=1.8.0,<1.9",
        "WebOb>=1.8.11,<1.9",
        "SQLAlchemy>=2.1.9,<2.2",
        "alembic>=1.13",
        "psycopg2-binary>=2.9.13,<2.10",
        "gunicorn>=22.0",
        "orjson>=3.10",
        # gzip of responses 5-10x faster than zlib (paddles/content_coding.py: public API
        # only; zlib where there is no wheel, as on 32-bit platforms)
        "isal>=1.6; platform_machine == 'x86_64' or platform_machine == 'AMD64' or "
        "platform_machine == 'aarch64' or platform_machine == 'arm64'",
        "PyYAML>=6",
        "python-subunit>=1.4",
        "testtools>=2.7",
        "defusedxml>=0.7",
        "boto3>=1.34",
        "multipart>=1.2",
        "prometheus-client>=0.20",
        # request bodies checked against the schemas the OpenAPI document publishes
        # (paddles/schemas/validation.py); public API only
        "jsonschema>=4.18,<5",
        # message brokers for `paddles dispatch` (paddles/brokers/): pure Python, no
        # dependencies of their own; public API only
        "pika>=1.3",
        "paho-mqtt>=2.1,<3",
        "nats-py>=2.9",
    ],
    extras_require={
        # what docs/deploy.md installs beside paddles: supervisord runs gunicorn and dispatch
        "deploy": ["supervisor>=4.2"],
        "test": [
            "pytest>=8.0",
            "pytest-xdist>=3.5",
            "webtest>=3.0",
            "requests>=2.31",
            "supervisor>=4.2",
            "openapi-spec-validator>=0.7",
            "moto[server]>=5.0",
            "schemathesis>=4.0",
            "hypothesis>=6.100",
            # a JSON Schema validator independent of the server's (Rust, ECMA 262 patterns)
            # judges the published request schemas (tests/events/test_body_schemas.py)
            "jsonschema-rs>=0.60",
            # `make lint` (pyproject.toml): pinned to a minor version, since a new release
            # brings new findings; constraints.txt holds the exact versions
            "ruff>=0.17.5,<0.18",
            "mypy>=2.4.1,<2.5",
            "types-PyYAML>=6.0.12,<6.1",
            "types-requests>=2.33,<2.34",
            "types-defusedxml>=0.7,<0.8",
            "types-psycopg2>=2.9.21,<2.10",
            "types-WebOb>=1.8.11,<1.9",
            "types-jsonschema>=4.26,<4.27",
        ],
    },
    entry_points={"console_scripts": ["paddles = paddles.commands:main"]},
    cmdclass={"build_py": BuildWithRepoFiles},
)

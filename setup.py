from setuptools import find_packages, setup

setup(
    name="paddles",
    version="0.1.0",
    description="A JSON results server for test labs, wire-compatible with Ceph's paddles",
    python_requires=">=3.11",
    packages=find_packages(include=["paddles", "paddles.*"]),
    install_requires=[
        # pinned to a minor version: paddles relies on their internals (pecan_speedups.py,
        # controllers/base.py, pg.py; tests/unit/test_internals.py says what to re-check)
        "pecan>=1.8.0,<1.9",
        "WebOb>=1.8.11,<1.9",
        "SQLAlchemy>=2.1.9,<2.2",
        "alembic>=1.13",
        "psycopg2-binary>=2.9.13,<2.10",
        "gunicorn>=22.0",
        "orjson>=3.10",
        "PyYAML>=6",
        "python-subunit>=1.4",
        "testtools>=2.7",
        "defusedxml>=0.7",
        "boto3>=1.34",
        "multipart>=1.2",
        "prometheus-client>=0.20",
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
        ],
    },
    entry_points={"console_scripts": ["paddles = paddles.commands:main"]},
)

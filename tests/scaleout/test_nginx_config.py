"""nginx_paddles.conf: the docs show exactly the file the tests run, and the tests change
nothing in it but addresses."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REQUIRE_PG
from tests.scaleout.nginx import REPO, TEMPLATE, main_config, nginx_binary, site_config


@pytest.mark.parametrize("doc", ["docs/deploy.md", "docs/scaling.md"])
def test_the_docs_show_the_tested_configuration_verbatim(doc):
    assert f"```nginx\n{TEMPLATE.read_text()}```" in (REPO / doc).read_text()


def test_the_tests_replace_only_the_upstream_servers_and_the_listen_port():
    template = TEMPLATE.read_text().splitlines()
    rendered = site_config(["127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:40003"],
                           "127.0.0.1:40000").splitlines()
    changed = [line for line in rendered if line not in template]
    assert [line.strip() for line in changed] == [
        "server 127.0.0.1:40001 max_fails=1 fail_timeout=5s;",
        "server 127.0.0.1:40002 max_fails=1 fail_timeout=5s;",
        "server 127.0.0.1:40003 max_fails=1 fail_timeout=5s;",
        "listen 127.0.0.1:40000;"]
    kept = [line for line in template if line in rendered]
    assert len(template) - len(kept) == 3  # the two server lines and the listen line


def test_nginx_accepts_it(tmp_path):
    binary = nginx_binary()
    if binary is None:
        if REQUIRE_PG:
            pytest.fail("nginx is not installed (apt-get install nginx-light; .ci/run does)")
        pytest.skip("nginx is not installed")
    site = tmp_path / "paddles.conf"
    site.write_text(site_config(["127.0.0.1:40001"], "127.0.0.1:40000"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(tmp_path, site, 1))
    check = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(conf), "-e",
                            str(tmp_path / "error.log")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

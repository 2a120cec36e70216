"""Spec section 7: run names to user, scheduled, suite, branch, machine_type."""
from __future__ import annotations

import datetime as dt

import pytest

from paddles.run_names import ParsedName, parse_run_name

UTC = dt.timezone.utc


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("name,user,scheduled,suite,branch,machine_type", [
    ("teuthology-2013-10-22_03:00:02-big-next-testing-basic-plana",
     "teuthology", at(2013, 10, 22, 3, 0, 2), "big", "next", "plana"),
    ("teuthology-2013-10-22_03:00:02-ceph-deploy-wip-9999-testing-basic-plana",
     "teuthology", at(2013, 10, 22, 3, 0, 2), "ceph-deploy", "wip-9999", "plana"),
    ("joe-2013-01-03_10:11:12-ceph-deploy-wip-9999-testing-basic-plana-ubuntu",
     "joe", at(2013, 1, 3, 10, 11, 12), "ceph-deploy", "wip-9999", "plana"),
    ("teuthology-2013-10-23_00:30:38-rgw-next---basic-saya",
     "teuthology", at(2013, 10, 23, 0, 30, 38), "rgw", "next", "saya"),
    ("teuthology-2013-10-22_03:00:02-kittens-next-testing-basic-plana",
     "teuthology", at(2013, 10, 22, 3, 0, 2), "kittens", "next", ""),
    ("a-b-2013-1-2_3:4:5-foo-bar-baz-qux-vps",
     "a-b", at(2013, 1, 2, 3, 4, 5), "foo", "bar", ""),
    ("teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi",
     "teuthology", at(2024, 1, 15, 20, 0, 3), "rados", "main-distro", ""),
    ("jdoe-2024-01-15_20:00:03-rados:thrash-wip-jdoe-fix-distro-default-smithi",
     "jdoe", at(2024, 1, 15, 20, 0, 3), "rados:thrash", "wip-jdoe-fix-distro", ""),
])
def test_spec_table(name, user, scheduled, suite, branch, machine_type):
    assert parse_run_name(name) == ParsedName(user=user, scheduled=scheduled, suite=suite,
                                              branch=branch, machine_type=machine_type)


@pytest.mark.parametrize("name", ["whatup", "", "teuthology-rados-main", "-", "a-b-c-d-e-f"])
def test_names_matching_nothing_give_defaults(name):
    assert parse_run_name(name) == ParsedName()
    assert parse_run_name(name).scheduled is None  # the caller uses `posted`


@pytest.mark.parametrize("name", [
    "teuthology-2013-13-01_03:00:02-big-next-testing-basic-plana",   # month 13
    "teuthology-2013-02-30_03:00:02-rados-next-testing-basic-plana",  # 30 February
    "teuthology-2013-10-22_25:00:02-kittens-next-testing-basic-plana",  # hour 25
    "teuthology-0-1-1_0:0:0-kittens-next-testing-basic-plana",        # year 0
])
def test_impossible_dates_fall_back_to_defaults(name):
    """REQ: a timestamp that matches TS but is no real date gives the defaults, no 500."""
    assert parse_run_name(name) == ParsedName()


def test_distro_variant_with_each_machine_type():
    for mtype in ("burnupi", "mira", "plana", "saya", "tala", "vps"):
        parsed = parse_run_name(f"u-2014-05-06_07:08:09-rbd-firefly-testing-basic-{mtype}-rhel")
        assert (parsed.suite, parsed.branch, parsed.machine_type) == ("rbd", "firefly", mtype)


def test_suite_prefixes_take_the_first_listed():
    parsed = parse_run_name("u-2014-05-06_07:08:09-upgrade:dumpling-x:stress-split-next-"
                            "testing-basic-plana")
    assert (parsed.suite, parsed.branch) == ("upgrade:dumpling-x:stress-split", "next")
    parsed = parse_run_name("u-2014-05-06_07:08:09-upgrade-rados-double-next-testing-basic-vps")
    # 'upgrade-rados-double' is listed before 'upgrade-rados' and 'upgrade'
    assert (parsed.suite, parsed.branch, parsed.machine_type) == ("upgrade-rados-double",
                                                                  "next", "vps")


def test_groups_are_stripped_of_spaces_and_dashes():
    parsed = parse_run_name(" me -2013-10-22_03:00:02-kittens- next -x-y-z")
    assert parsed.user == "me"
    assert parsed.branch == "next"


def test_rule_four_never_captures_a_machine_type():
    parsed = parse_run_name("u-2013-10-22_03:00:02-kittens-next-a-b-plana")
    assert parsed.machine_type == ""


def test_scheduled_is_read_in_the_configured_zone():
    name = "teuthology-2013-10-22_03:00:02-big-next-testing-basic-plana"
    assert parse_run_name(name, "UTC").scheduled == at(2013, 10, 22, 3, 0, 2)
    # EDT (UTC-4) in October
    assert parse_run_name(name, "America/New_York").scheduled == at(2013, 10, 22, 7, 0, 2)
    winter = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"
    # EST (UTC-5) in January, crossing midnight UTC
    assert parse_run_name(winter, "America/New_York").scheduled == at(2024, 1, 16, 1, 0, 3)
    assert parse_run_name(winter, "Asia/Kolkata").scheduled == at(2024, 1, 15, 14, 30, 3)


def test_default_zone_is_utc():
    name = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"
    assert parse_run_name(name).scheduled == at(2024, 1, 15, 20, 0, 3)


def test_timezone_setting_reaches_the_api(database_url, session_factory):
    import webtest

    from paddles.app import make_app
    from paddles.settings import load_settings
    settings = load_settings(environ={}, database_url=database_url,
                             timezone="America/New_York")
    app = webtest.TestApp(make_app(settings, session_factory=session_factory))
    name = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"
    app.post("/runs/", '{"name": "%s"}' % name)
    assert app.get(f"/runs/{name}/").json["scheduled"] == "2024-01-16 01:00:03"
    # the job POST that auto-creates a run uses the same zone
    other = "jdoe-2024-07-01_12:00:00-rados-main-distro-default-smithi"
    app.post(f"/runs/{other}/jobs/", '{"job_id": 1}')
    assert app.get(f"/runs/{other}/").json["scheduled"] == "2024-07-01 16:00:00"
    assert [r["name"] for r in app.get("/runs/date/2024-01-16/").json] == [name]


def test_env_variable_sets_the_zone():
    from paddles.settings import load_settings
    settings = load_settings(environ={"PADDLES_TIMEZONE": "Europe/Paris"},
                             database_url="sqlite://")
    assert settings.timezone == "Europe/Paris"
    assert load_settings(environ={}, database_url="sqlite://").timezone == "UTC"

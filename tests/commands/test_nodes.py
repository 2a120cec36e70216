"""set-targets, node-jobs, node-stats, queue-stats, import-nodes."""
import datetime as dt
import json

from sqlalchemy import delete, select

from paddles.models import Node, job_nodes
from tests.commands.conftest import set_job_fields
from tests.factories import post_job, put_job, run_name

UTC = dt.timezone.utc
KEY = "ssh-ed25519 AAAAC3Nza"


def now(**delta) -> dt.datetime:
    return dt.datetime.now(UTC) + dt.timedelta(**delta)


def nodes(session) -> dict[str, Node]:
    session.rollback()
    return {n.name: n for n in session.scalars(select(Node))}


def links(session) -> set[tuple[str, str]]:
    """(job_id, node name) pairs."""
    from paddles.models import Job
    session.rollback()
    return set(session.execute(select(Job.job_id, Node.name)
                               .join(job_nodes, job_nodes.c.job_id == Job.id)
                               .join(Node, Node.id == job_nodes.c.node_id)).all())


# ---- set-targets --------------------------------------------------------------------------

def test_set_targets_links_unlinked_jobs_and_guesses_machine_types(app, db_engine, session,
                                                                   cli):
    run = run_name()
    post_job(app, run, 1, machine_type="smithi",
             targets={"ubuntu@plana01.front": KEY, "ubuntu@vpm123.front": KEY,
                      "smithi001.front": KEY})
    post_job(app, run, 2, targets={"ubuntu@mira055.front": KEY})
    post_job(app, run, 3)                              # no targets: nothing to link
    with db_engine.begin() as conn:                    # an old database: links never made
        conn.execute(delete(Node))
        conn.execute(Node.__table__.insert().values(name="mira055.front", machine_type=None))
    post_job(app, run, 4, targets={"ubuntu@smithi002.front": KEY})  # linked by the API
    assert links(session) == {("4", "smithi002.front")}

    dry = cli("set-targets", "--dry-run")
    assert dry.lines == [
        f"{run}/1/: plana01.front, smithi001.front, vpm123.front "
        f"(created plana01.front, smithi001.front, vpm123.front)",
        f"{run}/2/: mira055.front"]
    assert set(nodes(session)) == {"mira055.front", "smithi002.front"}

    assert cli("set-targets").lines == dry.lines
    assert links(session) == {("1", "plana01.front"), ("1", "smithi001.front"),
                              ("1", "vpm123.front"), ("2", "mira055.front"),
                              ("4", "smithi002.front")}
    types = {name: node.machine_type for name, node in nodes(session).items()}
    assert types == {"plana01.front": "plana", "vpm123.front": "vps",
                     "smithi001.front": "smithi", "mira055.front": "mira",
                     "smithi002.front": "smithi"}
    assert cli("set-targets").lines == []


# ---- node-jobs ----------------------------------------------------------------------------

def test_node_jobs_lists_latest_jobs_of_a_node(app, cli):
    run = run_name()
    for job, hours in ((1, 1), (2, 3), (3, 2)):
        post_job(app, run, job, targets={"ubuntu@smithi001.front.sepia.ceph.com": KEY})
        put_job(app, run, job, updated=now(hours=-hours).strftime("%Y-%m-%d %H:%M:%S"))
    post_job(app, run, 4, targets={"ubuntu@smithi002.front.sepia.ceph.com": KEY})

    result = cli("node-jobs", "smithi001")
    assert result.lines == [f"{run}/1/", f"{run}/3/", f"{run}/2/"]
    assert "smithi001.front.sepia.ceph.com" in result.err
    assert cli("node-jobs", "smithi001", "-c", "2").lines == [f"{run}/1/", f"{run}/3/"]
    assert cli("node-jobs", "smithi002.front.sepia.ceph.com").lines == [f"{run}/4/"]
    ambiguous = cli("node-jobs", "smithi00", expect=1)
    assert "matches several nodes" in ambiguous.err and ambiguous.out == ""
    assert "no node" in cli("node-jobs", "mira", expect=1).err


# ---- node-stats ---------------------------------------------------------------------------

def test_node_stats_is_json_per_finished_job(app, db_engine, cli):
    run = run_name()
    started = now(hours=-2).replace(microsecond=0)
    post_job(app, run, 1, targets={"ubuntu@smithi001.front": KEY, "ubuntu@smithi002.front": KEY})
    put_job(app, run, 1, status="running")
    put_job(app, run, 1, status="pass", duration=400,
            updated=(started + dt.timedelta(seconds=500)).strftime("%Y-%m-%d %H:%M:%S"))
    set_job_fields(db_engine, run, 1, started=started)
    post_job(app, run, 2, status="running")                     # not finished
    post_job(app, run, 3, status="dead")                        # never started
    post_job(app, run, 4, status="running", machine_type="mira")
    put_job(app, run, 4, status="fail")
    post_job(app, run, 5, status="running")
    put_job(app, run, 5, status="pass")
    set_job_fields(db_engine, run, 5, posted=now(days=-3))     # posted before the window

    stats = cli("node-stats", "1").json()
    assert [s["job"] for s in stats] == [f"{run}/1", f"{run}/4"]
    first = stats[0]
    assert first == {"job": f"{run}/1", "status": "pass", "suite": "rados",
                     "nodes": ["smithi001.front", "smithi002.front"], "duration": 400,
                     "runtime": 500, "waited": 100,
                     "description": "rados/thrash/{clusters/fixed-2.yaml msgr/async.yaml}"}
    assert stats[1]["status"] == "fail" and stats[1]["nodes"] == []
    assert stats[1]["waited"] is None                           # no duration reported
    assert [s["job"] for s in cli("node-stats", "1", "-m", "smithi").json()] == [f"{run}/1"]
    assert len(cli("node-stats", "5").json()) == 3


# ---- queue-stats --------------------------------------------------------------------------

def test_queue_stats_table_per_day(app, cli):
    today, yesterday = now().date(), now(days=-1).date()
    run = run_name(when=f"{today:%Y-%m-%d}_00:00:01")
    for job, status in ((1, "pass"), (2, "fail"), (3, "queued"), (4, "running")):
        post_job(app, run, job, status=status)
    post_job(app, run_name(when=f"{yesterday:%Y-%m-%d}_12:00:00"), 1, status="pass")
    post_job(app, run_name(when=f"{now(days=-9).date():%Y-%m-%d}_12:00:00"), 1, status="pass")

    lines = cli("queue-stats", "3").lines
    assert lines[0].split() == ["DATE", "JOBS", "FINISHED", "PERCENT"]
    rows = [line.split() for line in lines[1:]]
    assert rows == [[f"{now(days=-2).date()}", "0", "0", "-"],
                    [f"{yesterday}", "1", "1", "100.0%"],
                    [f"{today}", "4", "2", "50.0%"]]


# ---- import-nodes -------------------------------------------------------------------------

def test_import_nodes_from_json(tmp_path, session, cli):
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps([
        {"name": "smithi001.front", "machine_type": "smithi", "arch": "x86_64", "up": True,
         "locked": True, "locked_by": "alice@laptop", "description": "testing",
         "mac-address": "aa:bb:cc:dd:ee:ff"},
        {"name": "vm01.front", "is_vm": True, "vm_host": "smithi001.front", "rack": "b12"},
    ]))
    dry = cli("import-nodes", str(path), "--dry-run")
    assert dry.lines == ["created: smithi001.front", "created: vm01.front"]
    assert nodes(session) == {}

    result = cli("import-nodes", str(path))
    assert result.lines == dry.lines
    assert "ignored unknown key 'rack'" in result.err
    found = nodes(session)
    host, vm = found["smithi001.front"], found["vm01.front"]
    assert (host.machine_type, host.arch, host.up, host.locked, host.locked_by) == \
        ("smithi", "x86_64", True, True, "alice@laptop")
    assert host.locked_since is not None and host.mac_address == "aa:bb:cc:dd:ee:ff"
    assert vm.is_vm and vm.vm_host_id == host.id and not vm.locked

    again = cli("import-nodes", str(path))
    assert again.lines == [] and "2 already present" in again.err


def test_import_nodes_from_yaml_with_update(tmp_path, session, cli):
    first = tmp_path / "first.yaml"
    first.write_text("smithi001.front:\n  machine_type: smithi\n  os_type: ubuntu\n"
                     "smithi002.front:\n")
    cli("import-nodes", str(first))
    second = tmp_path / "second.yml"
    second.write_text("- name: smithi001.front\n  os_type: centos\n  up: false\n"
                      "- name: smithi002.front\n"
                      "- name: mira001.front\n  machine_type: mira\n")

    skipped = cli("import-nodes", str(second))
    assert skipped.lines == ["created: mira001.front"]
    assert nodes(session)["smithi001.front"].os_type == "ubuntu"

    dry = cli("import-nodes", str(second), "--update", "--dry-run")
    assert dry.lines == ["updated: smithi001.front"]
    assert nodes(session)["smithi001.front"].os_type == "ubuntu"

    updated = cli("import-nodes", str(second), "--update")
    assert updated.lines == ["updated: smithi001.front"]
    assert "1 updated, 2 unchanged" in updated.err
    node = nodes(session)["smithi001.front"]
    assert (node.os_type, node.up, node.machine_type) == ("centos", False, "smithi")


def test_import_nodes_rejects_bad_files_as_a_whole(tmp_path, session, cli):
    cases = {
        "unknown-host.json": [{"name": "a"}, {"name": "vm", "vm_host": "nowhere"}],
        "ownerless.json": [{"name": "a"}, {"name": "b", "locked": True}],
        "bad-type.json": [{"name": "a"}, {"name": "b", "up": "yes"}],
        "no-name.json": [{"name": "a"}, {"machine_type": "smithi"}],
        "twice.json": [{"name": "a"}, {"name": "a"}],
        "scalar.json": "smithi001",
    }
    for file_name, content in cases.items():
        path = tmp_path / file_name
        path.write_text(json.dumps(content))
        assert cli("import-nodes", str(path), expect=1).err, file_name
    (tmp_path / "broken.yaml").write_text("a: [unclosed\n")
    assert "not valid YAML" in cli("import-nodes", str(tmp_path / "broken.yaml"), expect=1).err
    assert nodes(session) == {}


def test_import_nodes_update_follows_the_lock_rules(tmp_path, session, cli):
    path = tmp_path / "locked.yaml"
    path.write_text("smithi001.front:\n  locked: true\n  locked_by: alice@laptop\n"
                    "  locked_since: 2024-01-15 20:00:03\n")
    cli("import-nodes", str(path))
    node = nodes(session)["smithi001.front"]
    assert node.locked and node.locked_by == "alice@laptop"
    assert node.locked_since == dt.datetime(2024, 1, 15, 20, 0, 3, tzinfo=UTC)
    # The same file again, with --update: the unchanged lock is no conflict.
    assert "1 unchanged" in cli("import-nodes", str(path), "--update").err
    # Unlocking someone else's node is refused as the API refuses it; nothing changes.
    path.write_text("smithi001.front:\n  locked: false\n  locked_by: bob@laptop\n")
    refused = cli("import-nodes", str(path), "--update", expect=1)
    assert "locked_by values must match" in refused.err
    assert nodes(session)["smithi001.front"].locked
    path.write_text("smithi001.front:\n  locked: false\n  locked_by: alice@laptop\n")
    assert cli("import-nodes", str(path), "--update").lines == ["updated: smithi001.front"]
    node = nodes(session)["smithi001.front"]
    assert not node.locked and node.locked_by is None and node.locked_since is None

from tests.factories import post_job, put_job, run_name


def test_report_a_job_and_read_the_run(app):
    run = run_name()
    assert post_job(app, run, job_id=1) == {"job_id": "1"}
    put_job(app, run, 1, status="running")
    body = app.get(f"/runs/{run}/").json
    assert body["status"] == "running"
    assert body["results"]["running"] == 1
    assert [j["job_id"] for j in body["jobs"]] == ["1"]

"""The controller's ``/metrics``: who may read it, the series a farm operator scrapes, and Debian's real
Prometheus scraping a running controller and evaluating every dashboard and alert expression."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from testsupport import AuthedClient, free_port
from werkzeug.serving import make_server

from controller import provisioning
from controller.api import metrics as metrics_api
from controller.failover import FailoverLoop
from controller.stores import live_calls, nodes, registrations, tenants
from esl_workers.inbound import Ingest, NodeWatcher, WorkerConfig, Workers
from esl_workers.protocol import Event, FrameReader, parse_event
from mixer_ext.metrics import Metrics as MixerMetrics
from xmlcurl.web import service as xmlcurl_service
from xmlcurl.web import stop as stop_xmlcurl

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "fsfarm.json"
ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
RECORDED_EVENTS = ROOT / "tests" / "fixtures" / "freeswitch" / "esl" / "inbound-json-events.jsonl"
XMLCURL_AUTH = {"Authorization": "Basic ZnJlZXN3aXRjaDpzM2NyZXQ=", "Content-Type": "application/x-www-form-urlencoded"}


def _node(db: Any, name: str, *, spare: bool = False) -> None:
    provisioning.add_node(
        db,
        {
            "name": name,
            "sip_address": f"{name}.farm:5060",
            "esl_address": f"{name}.farm",
            "esl_password": "x",
            "spare": spare,
        },
    )


def _farm(db: Any) -> None:
    """Two nodes and two spares, three tenants, calls and registrations on fs2, and fs1's death failed over."""
    for name in ("fs1", "fs2"):
        _node(db, name)
    for name in ("spare1", "spare2"):
        _node(db, name, spare=True)
    provisioning.add_tenant(db, {"domain": "acme.example", "pinned_node": "fs1"})
    provisioning.add_tenant(db, {"domain": "beta.example", "pinned_node": "fs2"})
    provisioning.add_tenant(db, {"domain": "gamma.example", "pinned_node": "fs2"})
    with db.transaction() as conn:
        fs1, fs2 = nodes.get(conn, "fs1"), nodes.get(conn, "fs2")
        beta, gamma = tenants.get(conn, "beta.example"), tenants.get(conn, "gamma.example")
        assert fs1 and fs2 and beta and gamma
        for tenant, count in ((beta, 3), (gamma, 1)):
            for _ in range(count):
                live_calls.upsert(conn, fs2.id, live_calls.LiveCall(str(uuid.uuid4()), "answered"), tenant.id)
        registrations.save(
            conn,
            fs2.id,
            beta.id,
            "beta.example",
            "1001",
            "call-1",
            contact="sip:1001@10.0.0.9",
            network_ip="10.0.0.9",
            network_port="5060",
            user_agent="test",
            status="Registered",
            expires_at=None,
        )
        nodes.set_health(conn, fs2.id, "up", "heartbeats")
        nodes.set_health(conn, fs1.id, "down", "3 heartbeats missed")
    FailoverLoop(db).run_cycle()  # a real decision: acme moves to a spare and the row ends done


def _heartbeat(switchname: str, seconds_ago: float) -> Event:
    """The first HEARTBEAT a real FreeSWITCH sent (the recording), as from ``switchname``, stamped ``seconds_ago``."""
    stream = b"".join(
        json.loads(line)["data"].encode()
        for line in RECORDED_EVENTS.read_text().splitlines()
        if line.strip() and json.loads(line)["dir"] == "recv"
    )
    frames = [f for f in FrameReader().feed(stream) if f.content_type == "text/event-json"]
    recorded = next(e for e in map(parse_event, frames) if e.name == "HEARTBEAT")
    stamp = str(int((time.time() - seconds_ago) * 1_000_000))
    return Event(
        {**recorded.headers, "FreeSWITCH-Switchname": switchname, "Event-Date-Timestamp": stamp}, recorded.body
    )


def _esl_ingest(app: Any, db: Any, name: str, spool: Path) -> Ingest:
    """The ingest of a watcher of node ``name``, wired into the app's series as ``fsfarm up`` wires it (not connected:
    the test hands it the events)."""
    found = metrics_api.series(app)
    workers = Workers(db, WorkerConfig(spool_dir=spool), metrics=found)
    with db.transaction() as conn:
        node = nodes.get(conn, name)
    assert node is not None
    watcher = NodeWatcher(db, node, workers.config)
    watcher.ingest.metrics = found
    workers.watchers[node.id] = watcher
    found.esl = workers.counters
    return watcher.ingest


def _load_snapshot(app: Any) -> Any:
    """Start the app's xml_curl change listener and wait for its first full snapshot load."""
    svc = xmlcurl_service(app)
    svc.ensure_listening()
    assert svc.listener is not None and svc.listener.listening.wait(10)
    return svc.snapshot


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _families(text: str) -> dict[str, list[Any]]:
    """Sample lists by sample name (``fsfarm_failovers_total``, ``..._bucket``...)."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _value(samples: list[Any], **labels: str) -> float:
    found = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, samples)
    return float(found[0])


def test_metrics_need_a_farm_admin_or_a_metrics_token(client, db, farm_token) -> None:  # type: ignore[no-untyped-def]
    provisioning.add_tenant(db, {"domain": "acme.example"})
    tenant_token, _ = provisioning.create_token(db, "tenant-admin", "acme.example")
    scrape_token, _ = provisioning.create_token(db, "metrics", label="prometheus")

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer fsf_not-a-token"}).status_code == 401
    refused = AuthedClient(client, tenant_token).get("/metrics")
    assert refused.status_code == 403
    assert "fsfarm_" not in refused.get_data(as_text=True)
    for token in (farm_token, scrape_token):
        answered = AuthedClient(client, token).get("/metrics")
        assert answered.status_code == 200
        assert answered.content_type.startswith("text/plain")
        assert "fsfarm_node_up" in answered.get_data(as_text=True)
    # A scrape token reads the metrics and nothing else: the API does not exist for it.
    assert AuthedClient(client, scrape_token).get("/api/v1/tenants").status_code == 404


def test_metrics_describe_the_farm_with_bounded_labels(client, db, admin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _farm(db)
    client.post(
        "/xmlcurl", data="section=directory&key_value=beta.example&FreeSWITCH-Switchname=fs2", headers=XMLCURL_AUTH
    )
    client.post("/xmlcurl", data="section=dialplan", headers={"Authorization": "Basic bm9ib2R5Ong="})
    client.post("/xmlcurl", data="section=made-up&FreeSWITCH-Switchname=fs2", headers=XMLCURL_AUTH)
    admin.get("/api/v1/nodes/fs1")
    admin.get("/api/v1/nodes/no-such-node")

    got = _families(admin.get("/metrics").get_data(as_text=True))

    assert _value(got["fsfarm_database_up"]) == 1
    assert _value(got["fsfarm_node_up"], node="fs1") == 0
    assert _value(got["fsfarm_node_up"], node="fs2") == 1
    assert _value(got["fsfarm_node_health"], node="fs1", health="down") == 1
    assert _value(got["fsfarm_node_health"], node="fs1", health="up") == 0
    assert _value(got["fsfarm_node_admin_state"], node="fs2", state="active") == 1
    assert _value(got["fsfarm_node_spare"], node="spare1") == 0  # it took fs1's place
    assert _value(got["fsfarm_node_spare"], node="spare2") == 1
    assert _value(got["fsfarm_node_live_calls"], node="fs2") == 4
    assert _value(got["fsfarm_node_live_calls"], node="fs1") == 0
    assert _value(got["fsfarm_node_registrations"], node="fs2") == 1
    assert _value(got["fsfarm_node_tenants"], node="fs2") == 2
    assert _value(got["fsfarm_node_tenants"], node="fs1") == 0  # acme left the dead node
    assert _value(got["fsfarm_spares_free"]) == 1  # one spare took acme, one is left
    assert _value(got["fsfarm_placement_generation"]) >= 1
    assert _value(got["fsfarm_failovers_total"], state="done") == 1
    assert _value(got["fsfarm_failovers_total"], state="decided") == 0
    assert _value(got["fsfarm_failover_last_decision_seconds"]) >= 0
    assert _value(got["fsfarm_failover_last_completion_seconds"]) >= 0
    assert _value(got["fsfarm_failover_unfinished_seconds"]) == 0
    assert _value(got["fsfarm_tenant_live_calls"], tenant="beta.example") == 3
    assert _value(got["fsfarm_tenant_registrations"], tenant="beta.example") == 1

    # xml_curl latency by section and outcome; a section FreeSWITCH does not have is "other".
    counts = got["fsfarm_xmlcurl_request_seconds_count"]
    assert {(s.labels["section"], s.labels["outcome"]) for s in counts} >= {
        ("none", "unauthorized"),
        ("other", "not_found"),
    }
    assert any(s.labels["section"] == "directory" for s in counts)
    # API requests by route template, never the raw path.
    routes = {(s.labels["route"], s.labels["status"]) for s in got["fsfarm_api_requests_total"]}
    assert ("/api/v1/nodes/<ref>", "200") in routes
    assert ("/api/v1/nodes/<ref>", "404") in routes
    assert not any("no-such-node" in route for route, _ in routes)

    # Per-tenant labels are capped: past the limit the quietest tenants are summed as "other".
    monkeypatch.setattr(metrics_api, "MAX_TENANTS", 1)
    capped = _families(admin.get("/metrics").get_data(as_text=True))
    assert {s.labels["tenant"] for s in capped["fsfarm_tenant_live_calls"]} == {"beta.example", "other"}
    assert _value(capped["fsfarm_tenant_live_calls"], tenant="other") == 1


def test_snapshot_loads_and_esl_lag_are_exported(app, db, admin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _farm(db)
    before = _families(admin.get("/metrics").get_data(as_text=True))
    assert _value(before["fsfarm_xmlcurl_snapshot_generation"]) == 0  # not loaded yet: answers come from SQL
    assert "fsfarm_esl_event_lag_seconds_count" not in before

    snapshot = _load_snapshot(app)
    try:
        with db.transaction() as conn:
            beta = tenants.get(conn, "beta.example")
        assert beta is not None
        provisioning.update_tenant(db, "beta.example", {"name": "Beta renamed"})  # a notice: beta's rows reload
        _until(lambda: beta.id in snapshot.tenant_loads, "the tenant's notice never reloaded it")
        # ESL: a recorded heartbeat handled a minute after it was stamped, and one stamped an hour ahead of this
        # clock (a node's clock ahead of the controller's counts as no lag, not as a negative one).
        ingest = _esl_ingest(app, db, "fs2", tmp_path / "spool")
        ingest.handle([_heartbeat("fs2", 60), _heartbeat("fs2", -3600)])
        ingest.handle([_heartbeat("someone-else", 0)])  # another switch on this socket: refused, not counted
        got = _families(admin.get("/metrics").get_data(as_text=True))
    finally:
        stop_xmlcurl(app)

    # The snapshot: one full load, beta's reload, and the generation this process's snapshot has reached.
    assert _value(got["fsfarm_xmlcurl_snapshot_load_seconds_count"], scope="all") == 1
    assert _value(got["fsfarm_xmlcurl_snapshot_load_seconds_count"], scope="tenant") >= 1
    assert _value(got["fsfarm_xmlcurl_snapshot_generation"]) == snapshot.generation >= 2
    # ESL: the events fs2's watcher ingested, and their lag by node (no per-call label).
    assert _value(got["fsfarm_esl_events_total"], node="fs2") == 2
    assert _value(got["fsfarm_esl_event_lag_seconds_count"], node="fs2") == 2
    assert _value(got["fsfarm_esl_event_lag_seconds_bucket"], node="fs2", le="0.005") == 1  # the one from "ahead"
    assert _value(got["fsfarm_esl_event_lag_seconds_bucket"], node="fs2", le="30.0") == 1  # not the minute-old one
    assert _value(got["fsfarm_esl_event_lag_seconds_sum"], node="fs2") >= 60
    assert {s.labels["node"] for s in got["fsfarm_esl_event_lag_seconds_count"]} == {"fs2"}
    assert {tuple(sorted(s.labels)) for s in got["fsfarm_esl_event_lag_seconds_bucket"]} == {("le", "node")}


def test_the_controller_and_the_mixer_name_their_series_in_one_scheme(admin, db) -> None:  # type: ignore[no-untyped-def]
    _farm(db)
    controller = {f.name for f in text_string_to_metric_families(admin.get("/metrics").get_data(as_text=True))}
    mixer = {f.name for f in MixerMetrics().registry.collect()}
    assert controller and all(n.startswith("fsfarm_") and not n.startswith("fsfarm_mixer_") for n in controller)
    assert mixer and all(n.startswith("fsfarm_mixer_") for n in mixer)


def _dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_the_dashboard_and_alerts_cover_what_operators_watch() -> None:
    exprs = " ".join(_dashboard_exprs())
    for series in (
        "fsfarm_node_up",
        "fsfarm_node_live_calls",
        "fsfarm_xmlcurl_request_seconds_bucket",
        "fsfarm_failovers_total",
        "fsfarm_esl_events_total",
        "fsfarm_esl_event_lag_seconds_bucket",
        "fsfarm_xmlcurl_snapshot_generation",
        "fsfarm_xmlcurl_snapshot_load_seconds_bucket",
    ):
        assert series in exprs
    alerts = {r["alert"] for r in _alert_rules()}
    assert alerts >= {
        "FsfarmNodeDown",
        "FsfarmFailoverStuck",
        "FsfarmCdrSpoolGrowing",
        "FsfarmXmlCurlSlow",
        "FsfarmNoSpareLeft",
    }


@pytest.fixture
def served(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The controller's app on a real loopback HTTP port (werkzeug's threaded server), as host:port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def _query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.load(answer)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # a bad expression is a 400 with Prometheus's reason
        if exc.code == 503:  # still starting ("Service Unavailable", not JSON): no answer yet
            return {"status": "starting", "data": {"result": []}}
        return json.load(exc)  # type: ignore[no-any-return]


def _wait_for(what: str, check: Any, process: subprocess.Popen[bytes], log: Path, limit: float = 20.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        found = check()
        if found:
            return found
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"prometheus: {what} did not happen:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_prometheus_scrapes_the_controller_and_every_expression_evaluates(db, app, served, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's prometheus is not installed (.ci/install installs it)")
        pytest.skip("Debian's prometheus binary is not installed (apt-get install prometheus)")
    promtool = shutil.which("promtool")
    if promtool is not None:
        checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    _farm(db)
    # Every rate's series has a first sample before the first scrape (a series born later has no increase).
    snapshot = _load_snapshot(app)
    form = "section=directory&key_value=beta.example&FreeSWITCH-Switchname=fs2"
    client.post("/xmlcurl", data=form, headers=XMLCURL_AUTH)
    ingest = _esl_ingest(app, db, "fs2", tmp_path / "spool")
    ingest.handle([_heartbeat("fs2", 0)])

    def rename_beta(name: str) -> None:  # a tenant's notice: the snapshot reloads its rows
        loaded = snapshot.generation
        provisioning.update_tenant(db, "beta.example", {"name": name})
        _until(lambda: snapshot.generation > loaded, "the tenant's notice never reloaded the snapshot")

    rename_beta("Beta")
    token, _ = provisioning.create_token(db, "metrics", label="prometheus")
    work = Path(tempfile.mkdtemp(prefix="fsfarm-prometheus-"))
    port = free_port()
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {
                        "job_name": "fsfarm",
                        "authorization": {"type": "Bearer", "credentials": token},
                        "static_configs": [{"targets": [served]}],
                    }
                ],
            }
        )
    )
    log = work / "prometheus.log"
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def scrapes() -> float:
            try:
                result = _query(base, 'count_over_time(up{job="fsfarm"}[1m])')["data"]["result"]
            except OSError:  # not listening yet
                return 0
            return float(result[0]["value"][1]) if result else 0

        _wait_for("a first scrape", lambda: scrapes() >= 1, process, log)
        assert _query(base, 'up{job="fsfarm"}')["data"]["result"][0]["value"][1] == "1"
        # xml_curl answers, a snapshot reload and ESL events after that scrape, so the rates have something to show.
        for _ in range(5):
            client.post("/xmlcurl", data=form, headers=XMLCURL_AUTH)
        rename_beta("Beta renamed")
        ingest.handle([_heartbeat("fs2", 0) for _ in range(3)])
        done = scrapes()
        _wait_for("a later scrape", lambda: scrapes() >= done + 2, process, log)

        empty = []
        for expr in _dashboard_exprs():
            answer = _query(base, expr)
            assert answer["status"] == "success", (expr, answer)
            # A rate with no increase is NaN in histogram_quantile: present, but the panel would show nothing.
            if all(r["value"][1] == "NaN" for r in answer["data"]["result"]):
                empty.append(expr)
        assert empty == [], f"dashboard expressions without a value: {empty}"
        for rule in _alert_rules():  # valid; most are quiet on a healthy farm, so empty is fine
            answer = _query(base, rule["expr"])
            assert answer["status"] == "success", (rule["alert"], answer)

        def rules_evaluated() -> list[dict[str, Any]] | None:
            with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as answer:
                rules = [r for g in json.load(answer)["data"]["groups"] for r in g["rules"]]
            return rules if rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules) else None

        evaluated = _wait_for("an evaluation of every rule", rules_evaluated, process, log)
        assert {r["name"]: r["health"] for r in evaluated} == {r["alert"]: "ok" for r in _alert_rules()}
        fired = {r["metric"]["alertname"] for r in _query(base, "ALERTS")["data"]["result"]}
        assert "FsfarmNodeDown" in fired  # fs1 is down: Prometheus itself evaluates the rule (pending for 1m)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
        stop_xmlcurl(app)

"""``fsfarm status``: one sentence per thing that is wrong (pure function), then the API, CLI and ``tenant add``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from controller import provisioning
from controller.status import FarmReading, MixerFact, NodeFact, SpoolFact, findings, healthy
from controller.stores import nodes as node_store


def node(
    name: str,
    health: str = "up",
    spare: bool = False,
    tenants: int = 0,
    seen: bool = True,
    reason: str = "",
    admin_state: str = "active",
) -> NodeFact:
    return NodeFact(name, f"10.0.0.1:{8021}", spare, admin_state, health, reason, seen, tenants)


WELL = FarmReading(nodes=(node("fs1", tenants=2), node("spare1", spare=True)), tenants=2)


def texts(reading: FarmReading) -> list[str]:
    return [f.text for f in findings(reading)]


def only(reading: FarmReading) -> str:
    """The one sentence ``reading`` gives, asserting it is not the all-is-well one."""
    found = findings(reading)
    assert len(found) == 1 and found[0].level != "ok", found
    return found[0].text


def with_(**changes: object) -> FarmReading:
    return FarmReading(**{**WELL.__dict__, **changes})  # type: ignore[arg-type]


def test_a_healthy_farm_says_all_is_well_with_its_counts() -> None:
    found = findings(WELL)
    assert [f.level for f in found] == ["ok"] and healthy(found)
    assert found[0].text == "All is well: 2 nodes up, 1 free spare, 2 tenants placed."


def test_a_node_never_seen_alive_says_to_start_freeswitch_and_where_its_esl_is() -> None:
    text = only(with_(nodes=(*WELL.nodes, node("fs2", health="unknown", seen=False))))
    assert text.startswith("Node fs2 has never been seen alive: start FreeSWITCH on it")
    assert "fsfarm freeswitch bootstrap --node fs2" in text and "10.0.0.1:8021" in text


def test_a_node_down_says_so_with_its_reason() -> None:
    text = only(with_(nodes=(*WELL.nodes, node("fs2", health="down", reason="ESL connection refused"))))
    assert text.startswith("Node fs2 is down: restart FreeSWITCH there")
    assert text.endswith("Its watcher said: ESL connection refused.")


def test_a_suspect_node_is_a_warning_with_its_reason() -> None:
    found = findings(with_(nodes=(*WELL.nodes, node("fs2", health="suspect", reason="HEARTBEAT late by 2.1s"))))
    assert [(f.level, f.text.split(":")[0]) for f in found] == [
        ("warning", "Node fs2 is suspect (HEARTBEAT late by 2.1s)")
    ]


def test_a_disabled_node_is_not_reported_down() -> None:
    assert healthy(findings(with_(nodes=(*WELL.nodes, node("old", health="down", admin_state="disabled")))))


def test_tenants_on_no_node_are_named_and_counted() -> None:
    text = only(with_(unplaced=("acme.example", "beta.example")))
    assert text.startswith("2 tenants are on no node (acme.example, beta.example): their phones cannot register")
    one = only(with_(unplaced=("acme.example",)))
    assert one.startswith("1 tenant is on no node (acme.example): its phones cannot register")
    many = only(with_(unplaced=tuple(f"t{i}.example" for i in range(8))))
    assert "t4.example and 3 more" in many


def test_no_free_spare_when_the_spare_hosts_tenants_or_is_not_up_or_missing() -> None:
    for spare in (
        node("spare1", spare=True, tenants=1),
        node("spare1", spare=True, health="unknown", seen=False),
        None,
    ):
        reading = with_(nodes=(node("fs1", tenants=2), *([spare] if spare else [])))
        sentences = texts(reading)
        assert any(s.startswith("No free spare node: if a node fails") for s in sentences), sentences


def test_kamailio_out_of_sync_quotes_the_sync_outcome() -> None:
    text = only(with_(kamailio="reloaded but Kamailio holds 1 of 2 domains (missing ['beta.example'])"))
    assert text.startswith("Kamailio is out of sync with placement (reloaded but Kamailio holds 1 of 2 domains")
    assert "fsfarm kamailio reload" in text
    assert healthy(findings(with_(kamailio="reloaded; Kamailio routes 2 domains as placed")))


def test_a_spool_that_does_not_drain_is_reported_and_a_fresh_one_is_not() -> None:
    stuck = SpoolFact("fs1", 12, 95.0, "/var/lib/fsfarm/esl-spool/cdr-x.jsonl")
    text = only(with_(spools=(stuck,)))
    assert text.startswith("12 CDRs from node fs1 have waited 95 s in /var/lib/fsfarm/esl-spool/cdr-x.jsonl")
    assert healthy(findings(with_(spools=(SpoolFact("fs1", 3, 1.0, "/x"),))))  # still being replayed


def test_a_stale_snapshot_says_xml_curl_answers_from_postgresql() -> None:
    text = only(with_(snapshot_ready=False))
    assert text.startswith("xml_curl answers from PostgreSQL, not from its in-memory snapshot")
    assert healthy(findings(with_(snapshot_ready=True)))


def test_a_mixer_down_is_named() -> None:
    text = only(with_(mixers=(MixerFact("m1", "active", "down"), MixerFact("m2", "active", "up"))))
    assert text.startswith("Mixer m1 is down: its HD rooms moved")


def test_a_controller_that_does_not_answer_says_to_start_it() -> None:
    text = only(with_(controller="no answer at http://127.0.0.1:8080"))
    assert text.startswith("The controller is not running (no answer at http://127.0.0.1:8080): start it with")


def test_a_controller_that_refuses_says_what_is_left_out() -> None:
    text = only(with_(unasked="http://127.0.0.1:8080 answered 401"))
    assert text.startswith("The running controller would not answer (http://127.0.0.1:8080 answered 401): what")


def test_an_empty_farm_says_to_add_a_node() -> None:
    assert texts(FarmReading()) == [
        "No FreeSWITCH node is registered: add one with `fsfarm node add NAME --sip "
        "HOST --esl HOST:8021 --esl-password PASSWORD`."
    ]


def test_everything_wrong_at_once_gives_one_sentence_each_errors_and_warnings() -> None:
    reading = FarmReading(
        nodes=(node("fs1", health="down", seen=True), node("fs2", health="unknown", seen=False)),
        unplaced=("acme.example",),
        mixers=(MixerFact("m1", "active", "down"),),
        controller=None,
        kamailio="reload failed: no ctl socket",
        snapshot_ready=False,
        spools=(SpoolFact("fs1", 1, 60.0, "/s"),),
    )
    starts = [t.split(" ")[0:2] for t in texts(reading)]
    assert starts == [
        ["Node", "fs1"],
        ["Node", "fs2"],
        ["1", "tenant"],
        ["No", "free"],
        ["Kamailio", "is"],
        ["1", "CDR"],
        ["xml_curl", "answers"],
        ["Mixer", "m1"],
    ]


# ----------------------------------------------------------------------------- the database and the surfaces


def test_api_status_reads_the_farm_and_is_for_farm_admins_only(admin, client, db) -> None:  # type: ignore[no-untyped-def]
    admin.post(
        "/api/v1/nodes",
        json={"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1:8021", "esl_password": "x"},
    )
    answer = admin.get("/api/v1/status").get_json()
    assert answer["healthy"] is False
    assert [f["text"].split(":")[0] for f in answer["findings"]] == [
        "Node fs1 has never been seen alive",
        "No free spare node",
    ]
    with db.transaction() as conn:
        fs1 = node_store.get(conn, "fs1")
        assert fs1 is not None
        node_store.set_health(conn, fs1.id, "up", "test")
    admin.post(
        "/api/v1/nodes",
        json={
            "name": "spare1",
            "sip_address": "10.0.0.9",
            "esl_address": "10.0.0.9",
            "esl_password": "x",
            "spare": True,
        },
    )
    with db.transaction() as conn:
        spare = node_store.get(conn, "spare1")
        assert spare is not None
        node_store.set_health(conn, spare.id, "up", "test")
    admin.post("/api/v1/tenants", json={"domain": "acme.example"})
    answer = admin.get("/api/v1/status").get_json()
    assert answer["findings"] == [{"level": "ok", "text": "All is well: 2 nodes up, 1 free spare, 1 tenant placed."}]
    assert answer["reading"]["nodes"][0]["name"] == "fs1"
    assert client.get("/api/v1/status").status_code == 401
    tenant_token, _ = provisioning.create_token(db, "tenant-admin", "acme.example")
    assert client.get("/api/v1/status", headers={"Authorization": f"Bearer {tenant_token}"}).status_code == 404
    paths = admin.get("/api/v1/openapi.json").get_json()["paths"]
    assert "get" in paths["/api/v1/status"]


def test_api_tenant_add_answers_warnings_when_not_on_a_live_node(admin, db) -> None:  # type: ignore[no-untyped-def]
    nowhere = admin.post("/api/v1/tenants", json={"domain": "early.example"}).get_json()
    assert nowhere["node"] is None
    assert nowhere["warnings"] == [
        "tenant early.example is on no node: no node can take it (none registered, all "
        "down, or only spares); its phones cannot register until one is added or comes "
        "back"
    ]
    admin.post(
        "/api/v1/nodes", json={"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}
    )
    unseen = admin.post("/api/v1/tenants", json={"domain": "acme.example"}).get_json()
    assert unseen["node"] == "fs1" and len(unseen["warnings"]) == 1
    assert unseen["warnings"][0].startswith("tenant acme.example is placed on node fs1, which has never been seen")
    with db.transaction() as conn:
        fs1 = node_store.get(conn, "fs1")
        assert fs1 is not None
        node_store.set_health(conn, fs1.id, "up", "test")
    live = admin.post("/api/v1/tenants", json={"domain": "beta.example"}).get_json()
    assert (live["node"], live["warnings"]) == ("fs1", [])


def fsfarm(dsn: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSFARM_DATABASE_URL": dsn, "FSFARM_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli.entry", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_tenant_add_warns_on_stderr_and_exits_0_and_status_says_the_controller_is_not_running(dsn) -> None:  # type: ignore[no-untyped-def]
    state = Path(tempfile.mkdtemp(prefix="fsfarm-status-"))
    # Where a controller once listened and nothing answers now (its port is closed).
    (state / "controller.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "port": 9}))
    added = fsfarm(dsn, state, "tenant", "add", "acme.example")
    assert added.returncode == 0, added.stderr
    assert added.stderr.startswith("warning: tenant acme.example is on no node:"), added.stderr
    assert "acme.example" in added.stdout
    as_json = json.loads(fsfarm(dsn, state, "tenant", "add", "beta.example", "--json").stdout)
    assert as_json["node"] is None and as_json["warnings"][0].startswith("tenant beta.example is on no node")
    shown = fsfarm(dsn, state, "status")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "ERROR: The controller is not running (no answer at http://127.0.0.1:9): start it with "
        "`fsfarm up`; until then no node gets its configuration and nobody watches them."
    )
    assert lines[1].startswith("WARNING: No FreeSWITCH node is registered")
    assert lines[2].startswith("ERROR: 2 tenants are on no node (acme.example, beta.example)")


def test_api_status_hears_the_rooms_probes_spool_and_kamailio(admin, app, db) -> None:  # type: ignore[no-untyped-def]
    admin.post(
        "/api/v1/nodes", json={"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}
    )
    with db.transaction() as conn:
        fs1 = node_store.get(conn, "fs1")
        assert fs1 is not None
        node_store.set_health(conn, fs1.id, "up", "test")
    # The ESL room's spool for fs1, as its watcher leaves it when PostgreSQL refuses the rows, a minute old.
    spool = app.extensions["fsfarm.settings"].state_dir / "esl-spool" / f"cdr-{fs1.id}.jsonl"
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_text('{"a": 1}\n{"a": 2}\n')
    os.utime(spool, (time.time() - 60, time.time() - 60))
    app.extensions["fsfarm.status"]["kamailio"] = lambda: "reload failed: kamcmd: no such socket"
    texts = [f["text"] for f in admin.get("/api/v1/status").get_json()["findings"]]
    assert any(re.match(r"2 CDRs from node fs1 have waited 6\d s in .*cdr-", t) for t in texts), texts
    assert any(t.startswith("Kamailio is out of sync with placement (reload failed: kamcmd") for t in texts), texts
    spool.write_text("")
    del app.extensions["fsfarm.status"]["kamailio"]
    texts = [f["text"] for f in admin.get("/api/v1/status").get_json()["findings"]]
    assert not any("CDR" in t or "Kamailio" in t for t in texts), texts

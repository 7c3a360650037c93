"""The in-process snapshot: the same answers as SQL, kept current by notices, isolated per node."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xmlcurl_support import AUTH, is_not_found, parse_answer, pick, post

from controller import provisioning
from controller.database import Database
from controller.stores import nodes, placements
from xmlcurl import answers, fetch
from xmlcurl.cache import AnswerCache, ChangeListener
from xmlcurl.lookups import SqlReads
from xmlcurl.options import XmlCurlOptions
from xmlcurl.snapshot import Snapshot, SnapshotKeeper
from xmlcurl.web import XmlCurlService, service


def _until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _rich_farm(db: Database, farm: dict[str, Any]) -> dict[str, Any]:
    """The recording's farm plus what the recording does not show: a second node, a mixer, rooms elsewhere,
    gateways, DIDs of every kind, a disabled user and a disabled tenant."""
    fs2 = provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5070", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    provisioning.add_mixer(
        db,
        {
            "name": "mix1",
            "sip_address": "10.0.0.9:5090",
            "control_url": "http://10.0.0.9:8090",
            "control_token": "mixer-token-0123456789",
        },
    )
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    provisioning.update_tenant(db, "beta.test", {"pinned_node": "fs2"})
    gamma = provisioning.add_tenant(db, {"domain": "gamma.test", "name": "Gamma"})
    provisioning.update_tenant(db, "gamma.test", {"pinned_node": "vm"})
    provisioning.add_child(db, "users", "gamma.test", {"extension": "4001", "password": "secret-4001-x"})
    provisioning.update_tenant(db, "gamma.test", {"enabled": False})
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3100", "profile": "hd"})
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3200", "profile": "wideband", "pin": "4321"})
    provisioning.add_child(db, "conferences", "acme.test", {"number": "3300", "pinned_node": "fs2"})
    provisioning.add_child(db, "conferences", "beta.test", {"number": "3000"})
    for tenant, name, proxy in (
        ("acme.test", "carrier", "203.0.113.5:5060"),
        ("acme.test", "backup", "203.0.113.6"),
        ("beta.test", "carrier", "198.51.100.1:5060"),
    ):
        provisioning.add_child(
            db,
            "gateways",
            tenant,
            {
                "name": name,
                "proxy": proxy,
                "username": "u",
                "password": "p",
                "caller_id_number": "+15550000000",
                "strip_plus": name == "carrier",
            },
        )
    for number, target_type, target in (
        ("+15550001001", "user", "1001"),
        ("15550001002", "voicemail", "1002"),
        ("+15550003000", "conference", "3000"),
        ("+15550005000", "ivr", "menu"),
        ("+15550009999", "user", "1003"),
    ):
        provisioning.add_child(
            db, "numbers", "acme.test", {"number": number, "target_type": target_type, "target": target}
        )
    provisioning.add_child(
        db, "numbers", "beta.test", {"number": "+15550002001", "target_type": "user", "target": "2001"}
    )
    provisioning.add_child(
        db,
        "users",
        "acme.test",
        {"extension": "1009", "password": "secret-1009-x", "caller_id_name": 'Ann & <Bob> "x"', "voicemail": False},
    )
    provisioning.update_child(db, "users", "acme.test", "1003", {"enabled": False})
    return {**farm, "fs2": fs2, "gamma": gamma}


def _questions(recorded: Any, rooms: list[Any]) -> list[str]:
    """Every recorded request from every switch, plus dialled numbers the recording does not have."""
    bodies = []
    call = pick(recorded, "dialplan acme.test 1002")
    auth = pick(recorded, "directory sip_auth")
    for switch in ("vm", "fs2", "intruder"):
        host = {"hostname": switch, "FreeSWITCH-Switchname": switch}
        bodies += [r.with_fields(**host) for r in recorded]
        for user, domain in (
            ("1001", "acme.test"),
            ("1003", "acme.test"),
            ("1009", "acme.test"),
            ("2001", "beta.test"),
            ("4001", "gamma.test"),
            ("1001", "beta.test"),
        ):
            bodies.append(auth.with_fields(**host, user=user, domain=domain, key_value=domain))
        for context in ("acme.test", "beta.test", "gamma.test", "public", "nowhere.test"):
            dests = [
                "1001",
                "1002",
                "1003",
                "1009",
                "2001",
                "4001",
                "3000",
                "3100",
                "3200",
                "3300",
                "5000",
                "*98",
                "*991002",
                "*991009",
                "*992001",
                "+441234567890",
                "02012345678",
                "5551234",
                "9999",
                "+15550001001",
                "15550001001",
                "15550001002",
                "+15550003000",
                "15550005000",
                "+15550009999",
                "+15550002001",
                "15550002001",
            ]
            dests += [f"conf-{room.id}" for room in rooms]
            for dest in dests:
                bodies.append(
                    call.with_fields(
                        **host,
                        **{
                            "Caller-Context": context,
                            "Hunt-Context": context,
                            "Caller-Destination-Number": dest,
                            "Hunt-Destination-Number": dest,
                        },
                    )
                )
    return bodies


def test_snapshot_gives_the_sql_answer_to_every_question(db: Database, farm: Any, recorded: Any) -> None:
    _rich_farm(db, farm)
    snapshot = Snapshot()
    options = XmlCurlOptions(sip_proxies=("10.0.0.50",))
    with db.reads() as conn:
        snapshot.load_all(conn)
        rooms = list(snapshot._rooms.values())
        assert len(rooms) == 5
        compared = found = 0
        for body in _questions(recorded, rooms):
            parsed = fetch.parse(body.encode())
            question = answers.question(parsed)
            if question is None:
                continue
            node = nodes.by_switchname(conn, parsed.switchname)
            assert snapshot.node(parsed.switchname) == node
            if node is None:
                continue
            by_sql = answers.answer(SqlReads(conn), node, question, "127.0.0.1", options)
            by_snapshot = answers.answer(snapshot, node, question, "127.0.0.1", options)
            assert by_snapshot == by_sql, (parsed.switchname, question)
            compared += 1
            found += by_sql.body != answers.NOT_FOUND
    assert compared > 300 and found > 80, (compared, found)


def test_snapshot_answers_over_http_once_loaded(app: Any, client: Any, db: Database, farm: Any, recorded: Any) -> None:
    """The endpoint answers from the snapshot (no query) once the listener has loaded it."""
    svc = service(app)
    svc.ensure_listening()
    assert svc.listener is not None and svc.listener.listening.wait(10)
    assert svc.snapshot.ready and svc.snapshot.full_loads == 1
    queries = []
    real_reads = svc.db.reads

    def counting_reads() -> Any:
        queries.append(1)
        return real_reads()

    svc.db.reads = counting_reads  # type: ignore[method-assign]
    try:
        for request in recorded:
            parse_answer(post(client, request.body, auth=request.headers["Authorization"]))
    finally:
        svc.db.reads = real_reads  # type: ignore[method-assign]
    assert queries == []


def test_a_tenants_change_reloads_only_that_tenant(
    app: Any, client: Any, db: Database, farm: Any, recorded: Any
) -> None:
    svc = service(app)
    svc.ensure_listening()
    assert svc.listener is not None and svc.listener.listening.wait(10)
    snapshot = svc.snapshot
    beta_rows = snapshot._tenants[farm["beta"].id]
    full, farm_loads = snapshot.full_loads, snapshot.farm_loads
    body = pick(recorded, "directory sip_auth").body
    provisioning.update_child(db, "users", "acme.test", "1001", {"caller_id_name": "Renamed"})
    _until(lambda: farm["acme"].id in snapshot.tenant_loads, "the tenant's notice never reloaded it")
    assert list(snapshot.tenant_loads) == [farm["acme"].id]
    assert (snapshot.full_loads, snapshot.farm_loads) == (full, farm_loads)
    assert snapshot._tenants[farm["beta"].id] is beta_rows  # untouched
    assert snapshot.ready
    root = parse_answer(post(client, body))
    variables = {v.get("name"): v.get("value") for v in root.iter("variable")}
    assert variables["effective_caller_id_name"] == "Renamed"


def test_a_missed_notice_is_caught_by_the_full_reload_on_reconnect(
    app: Any, client: Any, db: Database, farm: Any, recorded: Any
) -> None:
    svc = service(app)
    svc.ensure_listening()
    listener = svc.listener
    assert listener is not None and listener.listening.wait(10)
    listener.retry_seconds = 0.1
    snapshot = svc.snapshot
    body = pick(recorded, "directory sip_auth").body
    assert not is_not_found(parse_answer(post(client, body)))
    # A change whose notice never arrives (written behind the provisioning layer's back) ...
    with db.transaction() as conn:
        conn.execute("UPDATE users SET caller_id_name = 'Unannounced' WHERE extension = '1001'")
    time.sleep(0.3)
    assert snapshot.full_loads == 1
    # ... is in the snapshot once the listener has reconnected (it cannot know what it missed).
    with db.reads() as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
        ).fetchall()
    assert killed and all(row["ok"] for row in killed)
    _until(lambda: snapshot.full_loads == 2 and snapshot.ready, "no full reload after the reconnect")
    svc.cache.clear()  # the cached answer is dropped by the reconnect too; make the point about the snapshot
    root = parse_answer(post(client, body))
    assert {v.get("name"): v.get("value") for v in root.iter("variable")}["effective_caller_id_name"] == "Unannounced"


def test_a_node_never_sees_a_tenant_not_placed_on_it(
    app: Any, client: Any, db: Database, farm: Any, recorded: Any
) -> None:
    rich = _rich_farm(db, farm)
    svc = service(app)
    svc.ensure_listening()
    assert svc.listener is not None and svc.listener.listening.wait(10)
    snapshot = svc.snapshot
    with db.reads() as conn:
        placed = {p.tenant_id: p.node_id for p in placements.tenant_placements(conn)}
    enabled = {t.id: t for t in (rich["acme"], rich["beta"])}
    for node in (rich["vm"], rich["fs2"]):
        for tenant_rows in snapshot._tenants.values():
            tenant = tenant_rows.tenant
            seen = snapshot.placed_tenant(tenant.domain, node.id)
            if tenant.id in enabled and placed.get(tenant.id) == node.id:
                assert seen is not None and seen.id == tenant.id
            else:
                assert seen is None and snapshot.tenant_on_node(tenant.id, node.id) is None
        assert {t.id for t in snapshot.tenants_on_node(node.id)} == {
            tid for tid in enabled if placed.get(tid) == node.id
        }
    # Over HTTP, from the snapshot: fs2 gets beta, not acme; and after beta moves to vm, fs2 loses it.
    auth = pick(recorded, "directory sip_auth")
    from_fs2 = {"hostname": "fs2", "FreeSWITCH-Switchname": "fs2"}
    assert snapshot.ready
    assert is_not_found(parse_answer(post(client, auth.with_fields(**from_fs2))))
    beta_body = auth.with_fields(**from_fs2, user="2001", domain="beta.test", key_value="beta.test")
    assert not is_not_found(parse_answer(post(client, beta_body)))
    provisioning.update_tenant(db, "beta.test", {"pinned_node": "vm"})
    _until(lambda: is_not_found(parse_answer(post(client, beta_body))), "fs2 still sees beta after it moved")
    from_vm = auth.with_fields(user="2001", domain="beta.test", key_value="beta.test")
    assert parse_answer(post(client, from_vm)).find(".//user").get("id") == "2001"


def test_database_down_at_start_answers_503_then_loads_when_it_returns(
    app: Any, db: Database, farm: Any, recorded: Any
) -> None:
    down = Database("host=127.0.0.1 port=1 dbname=none connect_timeout=1", max_size=1)
    down.pool.timeout = 0.5
    settings = service(app).settings
    svc = XmlCurlService(db=down, settings=settings, options=XmlCurlOptions(), cache=AnswerCache())
    svc.ensure_listening()
    listener = svc.listener
    assert listener is not None and listener.keeper is not None
    listener.retry_seconds = 0.1
    try:
        from controller.errors import Unavailable

        body = pick(recorded, "directory sip_auth").body.encode()
        try:
            svc.respond(body)
            raise AssertionError("answered without a database")
        except Unavailable:
            pass  # the front turns this into 503, as before the snapshot
        assert not svc.snapshot.ready
        # The database "returns": the listener's next attempt connects and loads the snapshot.
        assert isinstance(listener.keeper, SnapshotKeeper)
        listener.keeper.db = db
        listener.conninfo = db.conninfo
        assert listener.listening.wait(10)
        assert svc.snapshot.ready
        svc.db = db
        assert b'user id="1001"' in svc.respond(body)
    finally:
        listener.stop()
        down.close()


def test_listener_without_snapshot_still_works(db: Database, farm: Any) -> None:
    """The cache-only listener (no keeper) keeps its old behaviour."""
    cache = AnswerCache()
    listener = ChangeListener(db.conninfo, cache)
    listener.start()
    try:
        assert listener.listening.wait(10)
        generation = cache.generation
        provisioning.update_child(db, "users", "acme.test", "1001", {"caller_id_name": "Other"})
        _until(lambda: cache.generation > generation, "no notice")
    finally:
        listener.stop()


def test_front_and_view_agree_on_snapshot_answers(app: Any, farm: Any, recorded: Any) -> None:
    from werkzeug.test import Client

    svc = service(app)
    svc.ensure_listening()
    assert svc.listener is not None and svc.listener.listening.wait(10)
    through_front, through_flask = app.test_client(), Client(app.wsgi_app.inner)
    for request in recorded:
        a, b = post(through_front, request.body, auth=AUTH), post(through_flask, request.body, auth=AUTH)
        assert (a.status, a.data) == (b.status, b.data)

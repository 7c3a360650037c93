"""Answer cache: invalidation by change notices (in-process and over LISTEN), TTL, and FreeSWITCH flush orders."""

from __future__ import annotations

import time
import uuid
from typing import Any

from xmlcurl_support import parse_answer, pick, post

from controller import provisioning
from controller.stores.changes import Change, Notice
from xmlcurl.answers import Answer
from xmlcurl.cache import AnswerCache, flush_orders


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_change_drops_only_that_tenants_answers_and_farm_wide_ones() -> None:
    cache = AnswerCache(ttl=60)
    a, b = uuid.uuid4(), uuid.uuid4()
    g = cache.generation
    cache.put("a", Answer(b"A", frozenset([a])), g)
    cache.put("b", Answer(b"B", frozenset([b])), g)
    cache.put("wide", Answer(b"W", None), g)
    cache.put("static", Answer(b"S", frozenset()), g)
    cache.invalidate(Change(Notice.USER, a))
    assert (cache.get("a"), cache.get("b"), cache.get("wide"), cache.get("static")) == (None, b"B", None, b"S")
    cache.invalidate(Change(Notice.NODE, None))
    assert len(cache) == 0


def test_answer_built_before_a_change_is_not_stored() -> None:
    cache = AnswerCache(ttl=60)
    before = cache.generation
    cache.invalidate(Change(Notice.USER, uuid.uuid4()))
    cache.put("k", Answer(b"stale", None), before)
    assert cache.get("k") is None


def test_ttl_and_size_bound() -> None:
    clock = Clock()
    cache = AnswerCache(ttl=5, max_entries=2, clock=clock)
    for key in ("x", "y", "z"):
        cache.put(key, Answer(key.encode(), frozenset()), cache.generation)
    assert cache.get("x") is None and cache.get("z") == b"z"
    clock.now = 6
    assert cache.get("z") is None


def test_unreadable_notice_counts_as_farm_wide() -> None:
    assert Change.parse("not json") == Change(Notice.UNKNOWN, None)
    assert Change.parse('{"what": "user", "tenant": "nope"}') == Change(Notice.UNKNOWN, None)
    tenant = uuid.uuid4()
    # A kind this version does not know may concern anything: it must not be read as one tenant's change.
    assert Change.parse(f'{{"what": "frobnicator", "tenant": "{tenant}"}}') == Change(Notice.UNKNOWN, None)
    assert Change.parse(f'{{"what": "user", "tenant": "{tenant}"}}') == Change(Notice.USER, tenant)
    assert Change.parse({"what": "IVR", "tenant": None}) == Change(Notice.IVR, None)


def _display(client: Any, body: str) -> str:
    root = parse_answer(post(client, body))
    return {v.get("name"): v.get("value") for v in root.iter("variable")}["effective_caller_id_name"]


def test_write_through_the_api_reaches_the_next_answer(
    app: Any, client: Any, db: Any, farm: Any, recorded: Any
) -> None:
    """A provisioning write NOTIFYs; the listener drops the cached answer; FreeSWITCH sees the change."""
    from xmlcurl.web import service

    body = pick(recorded, "directory sip_auth").body
    assert _display(client, body) == "User 1001"
    svc = service(app)
    assert svc.listener is not None and svc.listener.listening.wait(10)
    _display(client, body)
    hits = svc.cache.hits
    assert _display(client, body) == "User 1001"
    assert svc.cache.hits == hits + 1  # served from the cache
    provisioning.update_child(db, "users", "acme.test", "1001", {"caller_id_name": "Renamed"})
    deadline = time.monotonic() + 10
    while _display(client, body) != "Renamed":
        assert time.monotonic() < deadline, "the change notice never dropped the cached answer"
        time.sleep(0.05)


def test_other_tenants_answers_survive_a_change(app: Any, client: Any, db: Any, farm: Any, recorded: Any) -> None:
    from xmlcurl.web import service

    svc = service(app)
    beta = pick(recorded, "directory sip_auth").with_fields(user="2001", domain="beta.test", key_value="beta.test")
    post(client, beta)
    assert svc.listener is not None and svc.listener.listening.wait(10)
    post(client, beta)
    size = len(svc.cache)
    provisioning.update_child(db, "users", "acme.test", "1001", {"caller_id_name": "Other"})
    time.sleep(0.5)
    hits = svc.cache.hits
    post(client, beta)
    assert svc.cache.hits == hits + 1 and len(svc.cache) == size


def test_flush_orders_name_the_nodes_running_the_tenant(db: Any, farm: Any) -> None:
    provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5060", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    provisioning.update_tenant(db, "acme.test", {"pinned_node": "vm"})
    with db.transaction() as conn:
        orders = flush_orders(conn, {"what": "user", "tenant": str(farm["acme"].id)})
        assert [o.node.name for o in orders] == ["vm"]
        assert orders[0].commands == ("xml_flush_cache",)
        gateway = flush_orders(conn, Change(Notice.GATEWAY, farm["acme"].id))
        assert "sofia profile internal rescan" in gateway[0].commands
        everywhere = flush_orders(conn, '{"what": "placement", "tenant": null}')
        assert sorted(o.node.name for o in everywhere) == ["fs2", "vm"]


def test_a_deleted_tenants_notice_reaches_the_node_it_was_on(db: Any, farm: Any) -> None:
    """Its node still holds the directory and dialplan it fetched; a tenant placed nowhere is told to every node."""
    provisioning.add_node(
        db, {"name": "fs2", "sip_address": "10.0.0.2:5060", "esl_address": "10.0.0.2:8021", "esl_password": "x"}
    )
    provisioning.remove_tenant(db, "acme.test", force=True)
    with db.transaction() as conn:
        orders = flush_orders(conn, Change(Notice.TENANT, farm["acme"].id))
    assert sorted(o.node.name for o in orders) == ["fs2", "vm"]
    assert "xml_flush_cache" in orders[0].commands

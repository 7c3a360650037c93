"""Fixtures for the xml_curl room: the recorded FreeSWITCH requests and a small farm shaped like the recording."""

from __future__ import annotations

from typing import Any

import pytest
from xmlcurl_support import RECORDED_PASSWORDS, Recorded, load_recorded

from controller import provisioning
from controller.database import Database
from controller.domain import a1_hash
from controller.stores import tenants, users


@pytest.fixture(scope="session")
def recorded() -> list[Recorded]:
    return load_recorded()


@pytest.fixture
def farm(db: Database) -> dict[str, Any]:
    """Node `vm` (the recording box) running acme.test and beta.test, a second node `fs2` for nothing yet."""
    vm = provisioning.add_node(
        db,
        {
            "name": "vm",
            "sip_address": "127.0.0.1:5060",
            "esl_address": "127.0.0.1:8021",
            "esl_password": "ClueCon",
            "rtp_port_min": 20000,
            "rtp_port_max": 20999,
        },
    )
    acme = provisioning.add_tenant(db, {"domain": "acme.test", "name": "Acme"})
    beta = provisioning.add_tenant(db, {"domain": "beta.test", "name": "Beta"})
    made = {}
    for ext in ("1001", "1002", "1003"):
        made[ext] = provisioning.add_child(
            db,
            "users",
            "acme.test",
            {
                "extension": ext,
                "password": f"secret-{ext}-x",
                "display_name": f"User {ext}",
                "vm_pin": "1234",
                "toll_allow": ["local", "domestic"],
            },
        )
    made["2001"] = provisioning.add_child(
        db, "users", "beta.test", {"extension": "2001", "password": "secret-2001-x", "display_name": "Beta 2001"}
    )
    # The recorded phones authenticated with short passwords the API refuses; store their a1-hash directly.
    with db.transaction() as conn:
        for ext, password in RECORDED_PASSWORDS.items():
            users.store.update(conn, made[ext].id, {"a1_hash": a1_hash(ext, "acme.test", password)})
    room = provisioning.add_child(db, "conferences", "acme.test", {"number": "3000", "profile": "narrowband"})
    ivr = provisioning.add_child(db, "ivrs", "acme.test", {"name": "menu", "extension": "5000"})
    with db.transaction() as conn:
        acme = tenants.get(conn, acme.id)
    return {"vm": vm, "acme": acme, "beta": beta, "users": made, "room": room, "ivr": ivr}


@pytest.fixture
def app(app: Any) -> Any:
    """The shared app, with its change listener stopped before its database is dropped."""
    yield app
    from xmlcurl.web import service

    svc = service(app)
    if svc.listener is not None:
        svc.listener.stop()

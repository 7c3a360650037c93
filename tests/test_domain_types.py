"""The core's value types: state enums that equal the schema's CHECK constraints, and ``HostPort``."""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller import provisioning
from controller.domain import (
    CONFERENCE_RATES,
    CONSOLE_SCOPES,
    NUMBER_TARGETS,
    TOKEN_SCOPES,
    AdminState,
    CommandStatus,
    FailoverState,
    HostPort,
    LedgerKind,
    MixerAdminState,
    MixerHealth,
    NodeHealth,
)
from controller.stores import failovers, mixers, nodes

# (table, column) -> the values the code knows for it; every CHECK of the form ``column IN (...)`` must be here.
KNOWN_SETS: dict[tuple[str, str], set[str]] = {
    ("nodes", "health"): set(NodeHealth),
    ("nodes", "admin_state"): set(AdminState),
    ("mixers", "health"): set(MixerHealth),
    ("mixers", "admin_state"): set(MixerAdminState),
    ("failovers", "state"): set(FailoverState),
    ("esl_command_jobs", "status"): set(CommandStatus),
    ("conferences", "profile"): set(CONFERENCE_RATES),
    ("numbers", "target_type"): set(NUMBER_TARGETS),
    ("api_tokens", "scope"): set(TOKEN_SCOPES),
    ("ledger_entries", "kind"): set(LedgerKind),
    ("console_sessions", "scope"): set(CONSOLE_SCOPES),
}

# How PostgreSQL prints ``CHECK (col IN ('a', 'b'))`` back: ``CHECK ((col = ANY (ARRAY['a'::text, 'b'::text])))``.
_IN_LIST = re.compile(r"^CHECK \(\((\w+) = ANY \(ARRAY\[(.*)\]\)\)\)$")


def check_constraint_sets(dsn: str) -> dict[tuple[str, str], set[str]]:
    """Every ``column IN (...)`` CHECK of the migrated schema, read from the catalog."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            """SELECT c.conrelid::regclass::text, pg_get_constraintdef(c.oid) FROM pg_constraint c
               WHERE c.contype = 'c' AND c.connamespace = 'public'::regnamespace"""
        ).fetchall()
    sets: dict[tuple[str, str], set[str]] = {}
    for table, definition in found:
        match = _IN_LIST.match(definition)
        if match:
            sets[(table, match[1])] = set(re.findall(r"'([^']*)'::text", match[2]))
    return sets


def test_every_state_enum_equals_its_check_constraint(dsn: str) -> None:
    assert check_constraint_sets(dsn) == KNOWN_SETS


def test_stores_hand_out_enum_members_and_keep_the_plain_text(db: Any) -> None:
    node = provisioning.add_node(
        db, {"name": "fs1", "sip_address": "10.0.0.1", "esl_address": "10.0.0.1", "esl_password": "x"}
    )
    mixer = provisioning.add_mixer(
        db,
        {
            "name": "mix1",
            "sip_address": "10.0.0.9",
            "control_url": "http://10.0.0.9",
            "control_token": "mixer-token-0123456789",
        },
    )
    with db.transaction() as conn:
        nodes.set_health(conn, node.id, NodeHealth.DOWN, "gone")
        down = nodes.get(conn, node.id)
        stored = mixers.get(conn, mixer.id)
        row = failovers.decide(conn, uuid.uuid4(), node.id, "i1", None, "gone", "test", None)
        unfinished = failovers.unfinished(conn)  # selects by enum members passed as SQL parameters
        text = conn.execute("SELECT health, admin_state FROM nodes WHERE id = %s", [node.id]).fetchone()
    assert down is not None and stored is not None and row is not None
    assert [f.id for f in unfinished] == [row.id]
    assert (down.health, down.admin_state) == (NodeHealth.DOWN, AdminState.ACTIVE)
    assert type(down.health) is NodeHealth and type(stored.health) is MixerHealth
    assert type(row.state) is FailoverState and row.state == FailoverState.DECIDED
    assert (text["health"], text["admin_state"]) == ("down", "active")
    assert json.loads(json.dumps(down.public()))["health"] == "down"
    assert f"{down.health}" == "down"


# ---------------------------------------------------------------- HostPort

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
hostnames = (
    st.from_regex(rf"\A{_LABEL}(\.{_LABEL}){{0,3}}\Z")
    .filter(lambda h: len(h) <= 253 and not re.fullmatch(r"[0-9.]+", h))
    .map(lambda h: (h, h.lower()))
)
ipv4 = st.ip_addresses(v=4).map(lambda ip: (str(ip), str(ip)))
ipv6 = st.ip_addresses(v=6).map(lambda ip: (f"[{ip.exploded}]", str(ip)))
ports = st.integers(min_value=1, max_value=65535)


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostnames, ipv4, ipv6), ports)
def test_host_port_parses_what_it_prints(written_and_host: tuple[str, str], port: int) -> None:
    written, host = written_and_host
    parsed = HostPort.parse(f"{written}:{port}")
    assert parsed == HostPort(host, port)
    assert HostPort.parse(str(parsed)) == parsed
    assert str(parsed) == (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


@settings(max_examples=100, deadline=None)
@given(st.one_of(hostnames, ipv4, ipv6), ports)
def test_host_port_takes_the_default_port_when_none_is_written(written_and_host: tuple[str, str], port: int) -> None:
    written, host = written_and_host
    assert HostPort.parse(written, port) == HostPort(host, port)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_host_port_refuses_with_a_sentence_or_round_trips(text: str) -> None:
    try:
        parsed = HostPort.parse(text, 5060)
    except ValueError as exc:
        assert "invalid literal" not in str(exc)  # a sentence of ours, not int()'s
        return
    assert HostPort.parse(str(parsed)) == parsed


def test_ipv6_host_keeps_its_brackets_only_where_text_needs_them() -> None:
    parsed = HostPort.parse("[2001:DB8:0::1]:5080")
    assert (parsed.host, parsed.uri_host, str(parsed)) == ("2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:5080")
    assert ipaddress.ip_address(parsed.host).version == 6


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.1", "the port is missing"),
        ("10.0.0.1:²", "from 1 to 65535"),
        ("10.0.0.1:１２", "from 1 to 65535"),
        ("[2001:db8::1]x", "written \\[address\\]:port"),
        ("[2001:db8::1", "written \\[address\\]:port"),
        ("", "host is missing"),
    ],
)
def test_host_port_without_a_default_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        HostPort.parse(text)

"""Gateway dial patterns match with RE2: nested quantifiers cannot backtrack; patterns it refuses never match."""

from __future__ import annotations

import uuid

from controller.domain import Gateway
from xmlcurl.dialplan import pick_gateway


def gateway(name: str, pattern: str) -> Gateway:
    return Gateway(id=uuid.uuid4(), tenant_id=uuid.uuid4(), name=name, proxy="sip.x.example", dial_pattern=pattern)


def test_a_pattern_that_backtracks_in_pcre_answers_at_once() -> None:
    evil = gateway("a-evil", r"^(\d+)+x$")
    fallback = gateway("b-any", r"^\+?[0-9]{7,15}$")
    # 28 digits and no "x": Python's re (like PCRE) would try 2^27 ways; RE2 scans once.
    assert pick_gateway([evil, fallback], "1" * 28) is None
    assert pick_gateway([evil, fallback], "1" * 12) == fallback
    assert pick_gateway([evil, fallback], "123x") == evil


def test_a_stored_pattern_re2_refuses_is_skipped() -> None:
    # Stored before patterns were checked: a backreference RE2 cannot compile.
    old = gateway("a-old", r"^(\d)\1+$")
    fallback = gateway("b-any", r"^\+?[0-9]{7,15}$")
    assert pick_gateway([old, fallback], "5555555") == fallback

"""``fsfarm billing`` as an operator types it: a deck from a CSV file, an account, a top-up, refusals."""

from __future__ import annotations

from pathlib import Path

from tests.test_admin_cli import fsfarm


def test_load_a_deck_assign_it_and_top_up(dsn: str, tmp_path: Path) -> None:
    assert fsfarm(dsn, "tenant", "add", "acme.example").returncode == 0
    deck = tmp_path / "world.csv"
    deck.write_text("prefix,description,price_per_minute,connect_fee,increment\n49,Germany,0.02,0,60/60\n")
    assert fsfarm(dsn, "billing", "deck", "add", "world", "--currency", "EUR").returncode == 0
    imported = fsfarm(dsn, "billing", "deck", "import", "world", str(deck))
    assert (imported.returncode, imported.stdout.strip()) == (0, "rate deck world: 1 rate(s)")
    exported = fsfarm(dsn, "billing", "deck", "export", "world").stdout
    assert exported.splitlines()[1] == "49,Germany,0.020000,0.000000,60/60,EUR"
    assert fsfarm(dsn, "billing", "assign", "acme.example", "world", "--margin", "10").returncode == 0
    assert fsfarm(dsn, "billing", "account", "add", "acme.example", "--currency", "EUR").returncode == 0
    topped = fsfarm(dsn, "billing", "top-up", "acme.example", "20", "--reference", "inv-1")
    assert topped.returncode == 0 and "20.000000" in topped.stdout
    adjusted = fsfarm(dsn, "billing", "adjustment", "acme.example", "--", "-1.5")
    assert adjusted.returncode == 0, adjusted.stderr
    shown = fsfarm(dsn, "billing", "account", "show", "acme.example")
    assert "18.500000" in shown.stdout

    # Refusals: one line naming what is wrong, a non-zero exit, nothing changed.
    bad = tmp_path / "bad.csv"
    bad.write_text("prefix,price_per_minute\n49,0.02\n4x,0.1\n")
    refused = fsfarm(dsn, "billing", "deck", "import", "world", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: line 3: prefix: must be 1 to 15 digits"
    assert fsfarm(dsn, "billing", "deck", "export", "world").stdout == exported
    negative = fsfarm(dsn, "billing", "top-up", "acme.example", "--", "-5")
    assert negative.returncode == 1 and negative.stderr.startswith("error: AMOUNT: a top-up adds money")
    assert "18.500000" in fsfarm(dsn, "billing", "account", "show", "acme.example").stdout

"""Each table has one owner store: SQL naming a table lives in that store's module and nowhere else.

The tables come from ``sql/*.sql`` (CREATE TABLE / CREATE VIEW) plus the migration runner's own;
the SQL comes from the string constants of every module of the rooms that talk to the database.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.stores import OWNERS, READS

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("controller", "xmlcurl", "esl_workers")
# The shared helpers take the table as an argument; their callers name it (and are checked).
SHARED = {"controller.stores.rows", "controller.stores.children"}
# FreeSWITCH's own tables in the nodes' database, in a schema per node: none of the farm's tables (a farm
# table named there is still checked like anywhere else).
NODES_DATABASE = {"controller.database.switch"}
NODES_DATABASE_NAMES = {"sofia", "gone"}  # FreeSWITCH's shared schema (sofia.sip_registrations...), and a CTE
_CREATED = re.compile(r"\bCREATE\s+(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
# SQL keywords in capitals, as this code writes them (so "removed from {tenant}" in a message is not SQL).
_NAMED = re.compile(r"\b(DELETE\s+FROM|INTO|UPDATE|FROM|JOIN)\s+(\{|\w+)")
_WRITES = ("DELETE", "INTO", "UPDATE")
# Calls that take a table's name as an argument (rows.insert(conn, "nodes", ...), sql.Identifier("nodes")...).
_TABLE_ARGUMENT_CALLS = {"insert", "update", "get", "delete", "by_id_or_name", "Identifier", "TenantChildStore"}


@dataclass(frozen=True)
class Mention:
    module: str
    line: int
    table: str  # "{}" for a table name filled in at run time
    writes: bool
    how: str  # what the line does with the table, for the failure message

    def __str__(self) -> str:
        return f"{self.module.replace('.', '/')}.py:{self.line} {self.how} {self.table}"


def created_tables() -> set[str]:
    found = {"schema_migrations"}  # created by sql/migrate.py itself
    for path in sorted((ROOT / "sql").glob("*.sql")):
        found |= {name.lower() for name in _CREATED.findall(path.read_text())}
    return found


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string constant outside docstrings; an f-string as one text with ``{}`` for its holes."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            yield node.lineno, "".join(str(p) for p in parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def mentions(tables: set[str]) -> list[Mention]:
    found = []
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            module = _module(path)
            tree = ast.parse(path.read_text())
            for line, text in _texts(tree):
                for match in _NAMED.finditer(text):
                    name = match.group(2).lower()
                    if name in tables or name == "{":
                        writes = match.group(1).upper().startswith(_WRITES)
                        how = "writes" if writes else "reads"
                        found.append(Mention(module, line, "{}" if name == "{" else name, writes, how))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if called in _TABLE_ARGUMENT_CALLS:
                        for arg in node.args:
                            if isinstance(arg, ast.Constant) and arg.value in tables:
                                found.append(
                                    Mention(module, node.lineno, arg.value, True, f"passes {called}() the table")
                                )
    return found


def test_every_table_has_one_owner_store() -> None:
    tables = created_tables()
    assert set(OWNERS) == tables, "OWNERS in controller/stores/__init__.py must name every table and only those"
    for table, owner in OWNERS.items():
        assert (ROOT / (owner.replace(".", "/") + ".py")).is_file(), f"{table}: owner {owner} does not exist"
        assert owner.startswith("controller.stores.") or table == "schema_migrations", table


def test_only_the_owner_store_names_a_table() -> None:
    tables = created_tables()
    wrong = []
    used_reads = set()
    for m in mentions(tables):
        if m.table == "{}":
            if m.module not in SHARED | NODES_DATABASE:
                wrong.append(f"{m}: a table name filled in at run time hides which store owns it")
        elif OWNERS[m.table] == m.module:
            continue
        elif not m.writes and m.table in READS.get(m.module, ()):
            used_reads.add((m.module, m.table))
        else:
            wrong.append(f"{m}, which belongs to {OWNERS[m.table]}")
    assert not wrong, "\n".join(wrong)
    listed = {(module, table) for module, names in READS.items() for table in names}
    assert listed - used_reads == set(), "READS lists joins no store makes any more"


def test_reads_across_stores_are_between_stores() -> None:
    for module, names in READS.items():
        assert module in OWNERS.values(), module
        assert all(OWNERS[name] != module for name in names), module


_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b")
_NOT_TABLES = {"SET", "LATERAL"}  # ON CONFLICT ... DO UPDATE SET, LEFT JOIN LATERAL (...)
_CATALOGS = ("pg_", "pglogical", "information_schema")


def test_sql_names_only_tables_that_exist() -> None:
    """A misspelt table (``live_calls`` for ``esl_live_calls``) is a query that finds nothing, not an error."""
    tables = created_tables()
    unknown = []
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            for line, text in _texts(ast.parse(path.read_text())):
                if not _STATEMENT.match(text):
                    continue
                for match in _NAMED.finditer(text):
                    name = match.group(2)
                    if name in ("{", *_NOT_TABLES) or name.lower() in tables or name.startswith(_CATALOGS):
                        continue
                    if _module(path) in NODES_DATABASE and name in NODES_DATABASE_NAMES:
                        continue
                    unknown.append(f"{path.relative_to(ROOT)}:{line} {match.group(1)} {name}")
    assert not unknown, "\n".join(unknown)

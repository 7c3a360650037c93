"""Bulk import of a tenant's users from CSV (ours, or FusionPBX's extension export), with a per-row report.

Every row goes through ``provisioning.add_child`` (or ``update_child`` for an extension that exists, when
the caller asks for it), so a row is checked exactly as the API checks one user. The whole import runs in
one transaction with a savepoint per row: a bad row rolls back only itself, the good rows commit together
at the end (one change notice for the tenant, not one per row), and a dry run rolls everything back.
A file that cannot be read as a whole (not CSV, no header, unknown columns, too many rows, too large)
is refused before anything is stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from controller import provisioning
from controller import validation as v
from controller.database import Database
from controller.errors import Conflict, FarmError, Invalid

MAX_BYTES = 1024 * 1024  # the API's body limit: one request carries one file
MAX_ROWS = 5000
ON_CONFLICT = ("fail", "skip", "update")
OUTCOMES = ("created", "updated", "skipped", "error")

# Our own column names are the users API's body fields.
OUR_COLUMNS = {name: name for name in provisioning.KINDS["users"].fields}
# FusionPBX's names for what a user has here (extension, password, accountcode, toll_allow and enabled
# are spelled as ours). The voicemail ones come from its v_voicemails table.
FUSIONPBX_COLUMNS = {
    "effective_caller_id_name": "caller_id_name",
    "effective_caller_id_number": "caller_id_number",
    "call_timeout": "ring_timeout",
    "description": "display_name",
    "voicemail_password": "vm_pin",
    "voicemail_mail_to": "vm_email",
    "voicemail_enabled": "voicemail",
}
# A user has one caller id here: FusionPBX's outbound one fills it only where the effective one is empty.
FALLBACK_COLUMNS = {"outbound_caller_id_name": "caller_id_name", "outbound_caller_id_number": "caller_id_number"}
# The rest of FusionPBX's extension export: accepted, reported as ignored (nothing here means the same).
FUSIONPBX_IGNORED = frozenset(
    {
        "extension_uuid",
        "domain_uuid",
        "number_alias",
        "emergency_caller_id_name",
        "emergency_caller_id_number",
        "directory_first_name",
        "directory_last_name",
        "directory_visible",
        "directory_exten_visible",
        "max_registrations",
        "limit_max",
        "limit_destination",
        "missed_call_app",
        "missed_call_data",
        "user_context",
        "call_group",
        "call_screen_enabled",
        "user_record",
        "hold_music",
        "auth_acl",
        "cidr",
        "sip_force_contact",
        "nibble_account",
        "sip_force_expires",
        "mwi_account",
        "sip_bypass_media",
        "unique_id",
        "dial_string",
        "dial_user",
        "dial_domain",
        "do_not_disturb",
        "forward_all_destination",
        "forward_all_enabled",
        "forward_busy_destination",
        "forward_busy_enabled",
        "forward_no_answer_destination",
        "forward_no_answer_enabled",
        "forward_user_not_registered_destination",
        "forward_user_not_registered_enabled",
        "follow_me_uuid",
        "forward_caller_id_uuid",
        "absolute_codec_string",
        "force_ping",
        "voicemail_uuid",
        "voicemail_id",
    }
)
KNOWN_COLUMNS = frozenset(OUR_COLUMNS) | frozenset(FUSIONPBX_COLUMNS) | frozenset(FALLBACK_COLUMNS) | FUSIONPBX_IGNORED
# Headers written as table.column (FusionPBX's import templates) name the same columns.
_TABLE_PREFIXES = ("v_extensions.", "extensions.", "v_voicemails.", "voicemails.")

IMPORT_FIELDS = {
    "csv": v.Field(
        v.long_text(MAX_BYTES, f"the CSV file; the first line names the columns; at most {MAX_ROWS} rows"),
        required=True,
    ),
    "on_conflict": v.Field(v.one_of(*ON_CONFLICT)),
    "dry_run": v.Field(v.boolean),
}


@dataclass(frozen=True)
class Column:
    """One column of the file: its header as written, and the user field it fills (None: ignored)."""

    header: str
    field: str | None
    fallback: bool = False  # fills its field only where the field's own column is empty


@dataclass(frozen=True)
class RowResult:
    """What became of one row; ``row`` counts the header as row 1, as a spreadsheet numbers them."""

    row: int
    extension: str | None
    outcome: str  # one of OUTCOMES
    field: str | None = None  # for an error: the user field at fault, if one is
    column: str | None = None  # ...and the file's column it came from
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The row as the API answers it (the error keys only on an error)."""
        out: dict[str, Any] = {"row": self.row, "extension": self.extension, "outcome": self.outcome}
        if self.outcome == "error":
            out.update(field=self.field, column=self.column, error=self.error)
        return out


@dataclass(frozen=True)
class ImportReport:
    """The whole import: the counts, how the file's columns were read, and every row's outcome."""

    tenant: str
    dry_run: bool
    on_conflict: str
    columns: dict[str, str]  # the file's column -> the user field it fills
    ignored_columns: list[str]
    rows: list[RowResult]

    def count(self, outcome: str) -> int:
        """How many rows ended with ``outcome``."""
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def note(self) -> str:
        """One sentence saying what was stored."""
        errors = self.count("error")
        if self.dry_run:
            return "dry run: nothing was stored; the outcomes say what an import would do"
        if errors:
            return (
                f"each row stands alone: the {errors} row(s) with an error changed nothing, every other row was stored"
            )
        return "every row was stored" if self.rows else "the file has no rows: nothing was stored"

    def as_json(self) -> dict[str, Any]:
        """The report as the API answers it and ``--json`` prints it."""
        return {
            "tenant": self.tenant,
            "dry_run": self.dry_run,
            "on_conflict": self.on_conflict,
            **{("errors" if o == "error" else o): self.count(o) for o in OUTCOMES},
            "note": self.note,
            "columns": self.columns,
            "ignored_columns": self.ignored_columns,
            "rows": [r.as_json() for r in self.rows],
        }


class _Savepoints:
    """Stands in for the Database in provisioning's calls: each transaction they open is a savepoint of ours."""

    def __init__(self, conn: provisioning.Conn) -> None:
        self.conn = conn

    @contextmanager
    def transaction(self) -> Iterator[provisioning.Conn]:
        with self.conn.transaction():
            yield self.conn


def _csv_error(message: str, **detail: Any) -> Invalid:
    return Invalid(f"csv: {message}", {"field": "csv", **detail})


def _column_name(header: str) -> str:
    name = header.strip().lower()
    for prefix in _TABLE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def read_csv(csv_text: str) -> tuple[list[Column], list[tuple[int, list[str]]]]:
    """The file's columns and its non-blank rows (with their row numbers); Invalid for a file that is not one."""
    if len(csv_text) > MAX_BYTES or len(csv_text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _csv_error(f"over the {MAX_BYTES} byte limit: split the file", limit=MAX_BYTES)
    text = csv_text.removeprefix("\ufeff")  # spreadsheets save UTF-8 with a byte-order mark
    if "\x00" in text:
        raise _csv_error("not CSV text (it holds NUL bytes)")
    if not text.strip():
        raise _csv_error("the file is empty: its first line must name the columns, e.g. extension,password")
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)  # spreadsheets in many locales write ';'
    reader = csv.reader(io.StringIO(text.lstrip("\r\n"), newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader)
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank lines and rows of empty cells: spreadsheets leave them at the end
            if len(rows) == MAX_ROWS:
                raise _csv_error(f"more than {MAX_ROWS} rows: split the file", limit=MAX_ROWS)
            rows.append((number, cells))
    except csv.Error as exc:
        raise _csv_error(f"line {reader.line_num}: not valid CSV ({exc})", line=reader.line_num) from None
    return _columns(header), rows


def _columns(header: list[str]) -> list[Column]:
    names = [_column_name(h) for h in header]
    unknown = [h.strip() for h, n in zip(header, names, strict=True) if n and n not in KNOWN_COLUMNS]
    if len(unknown) == len([n for n in names if n]):
        shown = ",".join(header)[:80]
        raise _csv_error(
            f"the first line must name the columns (e.g. extension,password,caller_id_name); it reads {shown!r}",
            allowed=sorted(KNOWN_COLUMNS),
        )
    if unknown:
        raise _csv_error(f"unknown column(s): {', '.join(unknown)}", unknown=unknown, allowed=sorted(KNOWN_COLUMNS))
    columns: list[Column] = []
    given: dict[str, str] = {}  # field -> the column that fills it
    for position, (raw, name) in enumerate(zip(header, names, strict=True), start=1):
        if not name:
            columns.append(Column(f"(column {position}, no name)", None))
            continue
        if name in FALLBACK_COLUMNS:
            columns.append(Column(raw.strip(), FALLBACK_COLUMNS[name], fallback=True))
            continue
        field_name = OUR_COLUMNS.get(name) or FUSIONPBX_COLUMNS.get(name)
        if field_name is not None and field_name in given:
            raise _csv_error(
                f"columns {given[field_name]} and {raw.strip()} both give {field_name}: keep one",
                field_name=field_name,
            )
        if field_name is not None:
            given[field_name] = raw.strip()
        columns.append(Column(raw.strip(), field_name))
    if "extension" not in given:
        raise _csv_error("no extension column: every row needs one")
    return columns


def _row_values(columns: list[Column], cells: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The row's fields (empty cells left out: an update keeps what they would change) and each one's column."""
    values: dict[str, str] = {}
    # An empty cell's field still has its column, for the report of an error about it.
    sources = {c.field: c.header for c in columns if c.field is not None and not c.fallback}
    for fallbacks in (False, True):  # the main columns first: a fallback fills only what they left empty
        for column, cell in zip(columns, cells, strict=True):
            value = cell.strip()
            if column.field is None or column.fallback != fallbacks or not value or column.field in values:
                continue
            if column.field == "toll_allow":
                value = ",".join(item.strip() for item in value.split(",") if item.strip())
            values[column.field], sources[column.field] = value, column.header
    return values, sources


def _failed(row: int, extension: str | None, exc: FarmError, sources: dict[str, str]) -> RowResult:
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    field_name = detail.get("field") or next(iter(detail.get("missing") or []), None)
    if field_name is None and ("used_by" in detail or "constraint" in detail):
        field_name = "extension"
    field_name = field_name if isinstance(field_name, str) else None
    return RowResult(row, extension, "error", field_name, sources.get(field_name or ""), exc.message)


def _import_row(
    here: Database, tenant_ref: str, row: int, values: dict[str, str], sources: dict[str, str], on_conflict: str
) -> RowResult:
    ext = values.get("extension")
    try:
        provisioning.add_child(here, "users", tenant_ref, values)
        return RowResult(row, ext, "created")
    except Conflict as exc:
        exists = isinstance(exc.detail, dict) and exc.detail.get("used_by") == "user"
        if not exists or on_conflict == "fail":
            hint = ": on_conflict skip keeps it, update changes it" if exists else ""
            return _failed(row, ext, Conflict(exc.message + hint, exc.detail), sources)
    except FarmError as exc:
        return _failed(row, ext, exc, sources)
    if on_conflict == "skip":
        return RowResult(row, ext, "skipped")
    assert ext is not None  # add_child found a user with it
    try:
        provisioning.update_child(here, "users", tenant_ref, ext, {k: x for k, x in values.items() if k != "extension"})
        return RowResult(row, ext, "updated")
    except FarmError as exc:
        return _failed(row, ext, exc, sources)


def import_users(
    db: Database,
    tenant_ref: str,
    csv_text: str,
    *,
    on_conflict: str = "fail",
    dry_run: bool = False,
    on_row: Callable[[int, int, RowResult], None] | None = None,
) -> ImportReport:
    """Create (or, with ``on_conflict`` skip or update, keep or change) a tenant's users from a CSV file.

    ``on_row(done, total, result)`` is called after each row (the CLI draws its progress bar with it).
    Raises Invalid for a file that is not one (nothing stored), NotFound for a missing tenant.
    """
    on_conflict = v.one_of(*ON_CONFLICT)("on_conflict", on_conflict)
    columns, records = read_csv(csv_text)
    results: list[RowResult] = []
    seen: dict[str, int] = {}  # extension -> the row that had it first
    with db.transaction() as conn, conn.transaction(force_rollback=dry_run):
        tenant = provisioning.get_tenant(conn, tenant_ref)
        here = cast(Database, _Savepoints(conn))
        for done, (row, cells) in enumerate(records, start=1):
            if len(cells) != len(columns):
                result = RowResult(
                    row, None, "error", error=f"the row has {len(cells)} cells where the header has {len(columns)}"
                )
            else:
                values, sources = _row_values(columns, cells)
                ext = values.get("extension")
                if ext and ext in seen:
                    result = RowResult(
                        row,
                        ext,
                        "error",
                        "extension",
                        sources["extension"],
                        f"extension: {ext} is also on row {seen[ext]} of this file",
                    )
                else:
                    if ext:
                        seen[ext] = row
                    result = _import_row(here, str(tenant.id), row, values, sources, on_conflict)
            results.append(result)
            if on_row is not None:
                on_row(done, len(records), result)
    return ImportReport(
        tenant=tenant.domain,
        dry_run=dry_run,
        on_conflict=on_conflict,
        columns={c.header: c.field for c in columns if c.field is not None},
        ignored_columns=[c.header for c in columns if c.field is None],
        rows=results,
    )

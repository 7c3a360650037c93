"""Driving the HD mixers: rooms exist on the mixer placement chose, and a dead mixer's rooms move.

The mixer is dumb (the Powwownow seed): it knows rooms only because the controller creates them.
``MixerLoop.run_cycle()`` looks at every mixer once and returns one sentence:

* a mixer that fails its health check ``failures_to_down`` times in a row is marked down; placement
  then gives its rooms to the other mixers (same sticky bounded-load rule as nodes);
* every HD room placed on a healthy mixer exists there (created with its room's rate), and rooms
  the controller no longer places there are removed once empty;
* the FreeSWITCH legs of a room that moved are sent through the dialplan again (``uuid_transfer``
  to the room's number), which now bridges them to the new mixer.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from controller.assignment import reassign
from controller.database import Database
from controller.domain import CONFERENCE_RATES, Mixer, MixerAdminState, MixerHealth
from controller.errors import FarmError, Unavailable
from controller.stores import changes, mixers, placements
from controller.stores.changes import Notice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixerClient:
    """The mixer sidecar's control API (``mixer_ext.api``) over HTTP JSON, with the mixer's bearer token."""

    base_url: str
    token: str = ""
    timeout: float = 1.0

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                return None  # already there: creating is idempotent for us
            if exc.code == 401:
                said = "refused the control token registered for it (not the one in its --token-file)"
                raise Unavailable(f"mixer {self.base_url} {said}") from exc
            detail = exc.read()[:300].decode(errors="replace")
            raise Unavailable(f"mixer {self.base_url} answered {exc.code}", detail) from exc
        except (OSError, ValueError) as exc:
            raise Unavailable(f"mixer {self.base_url} cannot be reached", str(exc)) from exc
        return json.loads(raw) if raw else None

    def healthy(self) -> bool:
        try:
            answer = self._call("GET", "/healthz")
        except Unavailable:
            return False
        return bool(answer and answer.get("ok"))

    def rooms(self) -> dict[str, dict[str, Any]]:
        return {r["room"]: r for r in (self._call("GET", "/rooms") or {}).get("rooms", [])}

    def create_room(self, room: str, rate: int) -> None:
        self._call("POST", "/rooms", {"room": room, "rate": rate})

    def delete_room(self, room: str) -> None:
        self._call("DELETE", f"/rooms/{room}")


@dataclass(frozen=True)
class Wanted:
    """Pure: which rooms should exist on which mixer, from placement."""

    by_mixer: dict[UUID, dict[str, int]]  # mixer id -> {room id: rate}


def wanted_rooms(rows: list[dict[str, Any]]) -> Wanted:
    by_mixer: dict[UUID, dict[str, int]] = {}
    for row in rows:
        by_mixer.setdefault(row["mixer_id"], {})[str(row["conference_id"])] = CONFERENCE_RATES[row["profile"]]
    return Wanted(by_mixer)


Rebridge = Callable[[Database, UUID, UUID], int]  # (db, conference id, old mixer id) -> legs sent back


@dataclass
class MixerLoop:
    db: Database
    client_for: Callable[[Mixer], MixerClient] = field(default=lambda m: MixerClient(m.control_url, m.control_token))
    failures_to_down: int = 2
    rebridge: Rebridge | None = None
    interval: float = 0.3
    _failures: dict[UUID, int] = field(default_factory=dict)

    def run_cycle(self) -> str:
        try:
            return self._cycle()
        except FarmError as exc:
            return f"did nothing this cycle: {exc.message}"

    def _cycle(self) -> str:
        with self.db.transaction() as conn:
            all_mixers = mixers.list_all(conn)
        said: list[str] = []
        for mixer in all_mixers:
            if mixer.admin_state == MixerAdminState.DISABLED:
                continue
            if self.client_for(mixer).healthy():
                self._failures[mixer.id] = 0
                if mixer.health != MixerHealth.UP:
                    self._set_health(mixer, MixerHealth.UP)
                    said.append(f"mixer {mixer.name} answers its health check")
                continue
            self._failures[mixer.id] = self._failures.get(mixer.id, 0) + 1
            if mixer.health != MixerHealth.DOWN and self._failures[mixer.id] >= self.failures_to_down:
                moved = self._fail(mixer)
                said.append(
                    f"mixer {mixer.name} failed {self._failures[mixer.id]} health checks in a row; "
                    f"its {len(moved)} room(s) move to the other mixers"
                )
        said.extend(self._sync())
        return "; ".join(said) if said else f"all {len(all_mixers)} mixer(s) hold their rooms; nothing to do"

    def _set_health(self, mixer: Mixer, health: MixerHealth) -> None:
        with self.db.transaction() as conn:
            mixers.set_health(conn, mixer.id, health)
            changes.announce(conn, Notice.MIXER)
            if health == MixerHealth.UP:
                joined = [mixer.id] if mixer.health == MixerHealth.DOWN else []
                reassign(conn, f"mixer {mixer.name} is healthy", joined=joined)

    def _fail(self, mixer: Mixer) -> list[UUID]:
        with self.db.transaction() as conn:
            rooms = placements.rooms_on_mixer(conn, mixer.id)
            mixers.set_health(conn, mixer.id, MixerHealth.DOWN)
            changes.announce(conn, Notice.MIXER)
            reassign(conn, f"mixer {mixer.name} stopped answering")
        self._sync()  # the rooms must exist on their new mixer before the legs come back
        if self.rebridge is not None:
            for room in rooms:
                try:
                    self.rebridge(self.db, room, mixer.id)
                except FarmError as exc:
                    log.warning("could not send the legs of room %s to its new mixer: %s", room, exc.message)
        return rooms

    def _sync(self) -> list[str]:
        with self.db.transaction() as conn:
            rows = placements.mixer_rooms(conn)
            all_mixers = {m.id: m for m in mixers.list_all(conn)}
        wanted = wanted_rooms(rows)
        said = []
        for mixer_id, mixer in all_mixers.items():
            if mixer.health == MixerHealth.DOWN or mixer.admin_state == MixerAdminState.DISABLED:
                continue
            client = self.client_for(mixer)
            try:
                have = client.rooms()
                want = wanted.by_mixer.get(mixer_id, {})
                created = [room for room in want if room not in have]
                for room in created:
                    client.create_room(room, want[room])
                for room, info in have.items():
                    if room not in want and info.get("participants", 0) == 0:
                        client.delete_room(room)
            except Unavailable as exc:
                said.append(f"mixer {mixer.name} could not be synced ({exc.message})")
                continue
            if created:
                said.append(f"created {len(created)} room(s) on mixer {mixer.name}")
        return said

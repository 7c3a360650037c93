"""The mixer: its parts put together, and the control operations the HTTP API calls.

The parts, each in its own module behind a small interface:

- ``media.MediaLoop``: rooms, legs, the RTP socket and the 20 ms clock (its own thread and lock);
- ``signalling.SipSide``: the SIP socket and its own thread, which never holds the media lock;
- ``state``: export and import of a room for hot failover;
- ``api``: the HTTP control API over the operations below.

``Mixer`` is the ``Conference`` the SIP side drives and the object the control API holds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mixer_ext.errors import Conflict, Invalid, NotFound
from mixer_ext.media import MediaLoop
from mixer_ext.metrics import Metrics
from mixer_ext.rooms import Participant, Room, RoomConfig, Trusted, caller_of, check_room
from mixer_ext.signalling import SipSide
from mixer_ext.sip import Address, Leg, SipUas
from mixer_ext.state import STATE_VERSION, export_room, parse_state, resume_rtp

log = logging.getLogger(__name__)

__all__ = ["STATE_VERSION", "Mixer", "Participant", "Room", "RoomConfig", "caller_of"]


class Mixer:
    """A dumb conference mixer: answers SIP for ``room-<id>``, mixes every room, obeys the control API.

    ``trusted`` lists the networks (CIDRs) of the FreeSWITCH nodes: a leg whose SDP address is in
    one is sent RTP at once; any other leg only once its own RTP arrives, and only to where it came from.
    ``batch_codecs`` False codes every leg on its own and shares nothing (the bench's reference);
    ``batch_io`` False reads and sends one packet per system call (``recvfrom``/``sendto``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        sip_port: int = 0,
        rtp_port: int = 0,
        advertise: str | None = None,
        trusted: list[str] | tuple[str, ...] = ("127.0.0.0/8",),
        batch_codecs: bool = True,
        batch_io: bool = True,
    ) -> None:
        self.host = host
        self.advertise = advertise or host
        self.metrics = Metrics()
        self.media = MediaLoop(host, rtp_port, self.metrics, Trusted(trusted), batch_codecs, batch_io)
        try:
            self.sip = SipSide(host, sip_port, self.advertise, self)
        except OSError:
            self.media.sock.close()
            raise
        self.metrics.registry.register(self.sip.collector())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ----- the parts, as callers and tests knew them ----------------------------------------

    @property
    def sip_port(self) -> int:
        return self.sip.port

    @property
    def rtp_port(self) -> int:
        return self.media.port

    @property
    def sip_sock(self) -> Any:
        return self.sip.sock

    @property
    def rtp_sock(self) -> Any:
        return self.media.sock

    @property
    def uas(self) -> SipUas:
        return self.sip.uas

    @property
    def rooms(self) -> dict[str, Room]:
        return self.media.rooms

    @property
    def by_call(self) -> dict[str, Participant]:
        return self.media.by_call

    @property
    def frames(self) -> int:
        return self.media.frames

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> Mixer:
        """Start the SIP and media threads."""
        for target, name in ((self.sip.run, "mixer-sip"), (self.media.run, "mixer-media")):
            thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the threads and close the sockets."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.sip.close()
        self.media.sock.close()

    def alive(self) -> bool:
        """True while the SIP and media threads are running."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def healthy(self) -> bool:
        """Alive, and the media loop finished a tick within the last second."""
        return self.alive() and not self.media.stuck()

    def __enter__(self) -> Mixer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- the Conference protocol the SIP side drives ----------------------------------------

    def room_rate(self, room_id: str) -> int | None:
        room = self.media.rooms.get(room_id)
        return room.config.rate if room else None

    def media_address(self) -> Address:
        return self.advertise, self.media.port

    def join(self, leg: Leg) -> None:
        self.media.add(leg)

    def update(self, leg: Leg) -> None:
        self.media.update(leg)

    def leave(self, call_id: str, reason: str) -> None:
        self.media.remove(call_id, reason)

    # ----- control operations (the HTTP API calls these) -----------------------------------------

    def create_room(
        self, room_id: str, rate: int, loudest_k: int = 0, opus_complexity: int | None = None
    ) -> RoomConfig:
        """Create an empty room; Conflict if it exists, Invalid for a bad id, rate, K or Opus complexity."""
        config = check_room(room_id, rate, loudest_k, opus_complexity)
        if not self.media.add_room(config):
            raise Conflict(f"room {room_id} already exists", {"room": room_id})
        log.info(
            "room %s created at %d Hz (loudest_k=%d, opus_complexity=%s)", room_id, rate, loudest_k, opus_complexity
        )
        return config

    def room(self, room_id: str) -> Room:
        room = self.media.rooms.get(room_id)
        if room is None:
            raise NotFound(f"no room {room_id} on this mixer", {"room": room_id})
        return room

    def describe_room(self, room_id: str) -> dict[str, Any]:
        with self.media.lock:
            room = self.room(room_id)
            described = {
                "room": room_id,
                "rate": room.config.rate,
                "loudest_k": room.config.loudest_k,
                "participants": [p.describe() for p in room.members.values()],
            }
            if room.config.opus_complexity is not None:
                described["opus_complexity"] = room.config.opus_complexity
            return described

    def delete_room(self, room_id: str) -> None:
        """Hang up every leg of the room and forget it."""
        room = self.room(room_id)
        for pid in list(room.members):
            try:
                self.kick(room_id, pid)
            except NotFound:
                continue  # it hung up meanwhile
        self.media.remove_room(room_id)
        log.info("room %s deleted", room_id)

    def participant(self, room_id: str, pid: str) -> Participant:
        part = self.room(room_id).members.get(pid)
        if part is None:
            raise NotFound(f"no participant {pid} in room {room_id}", {"room": room_id, "participant": pid})
        return part

    def set_flags(
        self, room_id: str, pid: str, muted: bool | None = None, deaf: bool | None = None, gain: float | None = None
    ) -> dict[str, Any]:
        """Change mute, deaf or gain of one participant."""
        with self.media.lock:
            part = self.participant(room_id, pid)
            if gain is not None:
                if isinstance(gain, bool) or not isinstance(gain, int | float) or not 0 <= gain <= 16:
                    raise Invalid("gain must be a number from 0 to 16", {"gain": gain})
                part.gain = float(gain)
            if muted is not None:
                part.muted = bool(muted)
            if deaf is not None:
                part.deaf = bool(deaf)
            self.media.changed()
            return part.describe()

    def kick(self, room_id: str, pid: str) -> None:
        """Hang up one participant (sends BYE)."""
        call_id = self.participant(room_id, pid).leg.call_id
        self.sip.hang_up(call_id)
        self.media.remove(call_id, "kicked")

    # ----- room state (hot failover) -----------------------------------------------------------

    def export_room(self, room_id: str) -> dict[str, Any]:
        """Everything another mixer needs to carry on this room (JSON-ready)."""
        with self.media.lock:
            return export_room(self.room(room_id))

    def export_all(self) -> list[dict[str, Any]]:
        """Every room's state, for a controller that snapshots a whole mixer in one call."""
        with self.media.lock:
            return [export_room(room) for room in self.media.rooms.values()]

    def import_room(self, state: dict[str, Any]) -> dict[str, Any]:
        """Recreate a room exported by another mixer, every participant and dialog included."""
        config, exported_at, members = parse_state(state)
        adopted = []
        # One lock span: no tick mixes a member before its mute, deaf and gain are set.
        with self.media.lock:
            self.create_room(config.room_id, config.rate, config.loudest_k, config.opus_complexity)
            for member in members:
                if member.leg.call_id in self.media.by_call:
                    continue  # already here (an import retried): keep the live one
                part = self.media.add(member.leg, pid=member.pid)
                part.muted, part.deaf, part.gain = member.muted, member.deaf, member.gain
                resume_rtp(part, member, exported_at)
                adopted.append(member.leg)
            self.media.changed()
        # After the media lock is released: the SIP side takes its own lock, then the media lock.
        for leg in adopted:
            self.sip.adopt(leg)
        log.info("room %s imported with %d participants", config.room_id, len(members))
        return self.describe_room(config.room_id)

    def list_rooms(self) -> list[dict[str, Any]]:
        with self.media.lock:
            return [
                {
                    "room": r.config.room_id,
                    "rate": r.config.rate,
                    "loudest_k": r.config.loudest_k,
                    "participants": len(r.members),
                }
                for r in self.media.rooms.values()
            ]

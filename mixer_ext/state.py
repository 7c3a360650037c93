"""Room state for hot failover: what one mixer exports so another carries on the room.

``export_room`` turns a live room into JSON-ready data; ``parse_state`` checks such data at the
edge (every value a later send or plan would choke on is refused with Invalid) and gives back
the room and its legs; ``resume_rtp`` moves each stream on by the time the state travelled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mixer_ext.codecs import get_spec
from mixer_ext.errors import Invalid
from mixer_ext.rooms import PTIME_MS, Participant, Room, RoomConfig, check_media_address, check_room
from mixer_ext.sdp import Choice
from mixer_ext.sip import Leg

STATE_VERSION = 1


@dataclass(frozen=True)
class Member:
    """One participant of an imported room: its leg and what it carried on the old mixer."""

    pid: str
    leg: Leg
    muted: bool
    deaf: bool
    gain: float
    rtp: dict[str, int]  # ssrc, sequence, timestamp (any may be missing)


def export_room(room: Room) -> dict[str, Any]:
    """Everything another mixer needs to carry on this room (JSON-ready)."""
    parts = []
    for p in room.members.values():
        leg, choice = p.leg, p.leg.choice
        parts.append(
            {
                "id": p.pid,
                "call_id": leg.call_id,
                "muted": p.muted,
                "deaf": p.deaf,
                "gain": p.gain,
                "codec": f"{choice.codec.name}/{choice.codec.clock_rate}",
                "payload_type": choice.payload_type,
                "dtmf_payload_type": choice.dtmf_payload_type,
                "dtmf_clock_rate": choice.dtmf_clock_rate,
                "remote_media": list(leg.remote_media),
                "rtp": {"ssrc": p.ssrc, "sequence": p.sequence, "timestamp": p.timestamp},
                "sip": {
                    "local_tag": leg.local_tag,
                    "remote_tag": leg.remote_tag,
                    "remote_uri": leg.remote_uri,
                    "signalling": list(leg.signalling),
                    "local_uri": leg.local_uri,
                    "remote_party": leg.remote_party,
                    "local_cseq": leg.local_cseq,
                    "route": list(leg.route),
                },
            }
        )
    state = {
        "version": STATE_VERSION,
        "room": room.config.room_id,
        "rate": room.config.rate,
        "loudest_k": room.config.loudest_k,
        "exported_at": time.time(),
        "participants": parts,
    }
    if room.config.opus_complexity is not None:
        state["opus_complexity"] = room.config.opus_complexity
    return state


def parse_state(state: Any) -> tuple[RoomConfig, float, list[Member]]:
    """The room, its export time and its members from exported state; Invalid if anything is off."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise Invalid(f"room state must be an object with version {STATE_VERSION}")
    try:
        config = check_room(
            state["room"], int(state["rate"]), int(state.get("loudest_k", 0)), state.get("opus_complexity")
        )
        exported_at = float(state.get("exported_at", time.time()))
        members = []
        for p in state["participants"]:
            choice = Choice(
                get_spec(p["codec"]),
                _payload_type(p["payload_type"]),
                None if p.get("dtmf_payload_type") is None else _payload_type(p["dtmf_payload_type"]),
                int(p.get("dtmf_clock_rate", 8000)),
            )
            sip = p["sip"]
            leg = Leg(
                call_id=str(p["call_id"]),
                room_id=config.room_id,
                remote_media=check_media_address(p["remote_media"]),
                choice=choice,
                local_tag=sip["local_tag"],
                remote_tag=sip["remote_tag"],
                remote_uri=sip["remote_uri"],
                signalling=check_media_address(sip["signalling"]),
                local_uri=sip["local_uri"],
                remote_party=sip["remote_party"],
                local_cseq=int(sip.get("local_cseq", 1)),
                route=tuple(str(r) for r in sip.get("route", [])),
            )
            gain = float(p["gain"])
            if not 0 <= gain <= 16:
                raise Invalid("gain must be a number from 0 to 16", {"gain": p["gain"]})
            rtp = {k: int(v) for k, v in p.get("rtp", {}).items() if k in ("ssrc", "sequence", "timestamp")}
            members.append(Member(str(p["id"]), leg, bool(p["muted"]), bool(p["deaf"]), gain, rtp))
    except Invalid:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise Invalid("room state is incomplete or malformed", {"problem": repr(exc)}) from exc
    return config, exported_at, members


def _payload_type(value: Any) -> int:
    pt = int(value)
    if not 0 <= pt <= 127:
        raise ValueError(f"payload type {pt} is not 0-127")
    return pt


def resume_rtp(part: Participant, member: Member, exported_at: float) -> None:
    """Same SSRC, sequence and timestamp moved on by the frames elapsed: receivers see one stream with a gap."""
    elapsed = max(0, round((time.time() - exported_at) / (PTIME_MS / 1000))) + 1
    rtp = member.rtp
    part.ssrc = int(rtp.get("ssrc", part.ssrc)) & 0xFFFFFFFF
    part.sequence = (int(rtp.get("sequence", part.sequence)) + elapsed) & 0xFFFF
    part.timestamp = (int(rtp.get("timestamp", part.timestamp)) + elapsed * part.ts_step) & 0xFFFFFFFF

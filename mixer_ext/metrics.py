"""The mixer's Prometheus series, in a registry of its own (several mixers may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every series the mixer exports on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frame_seconds = Histogram(
            "fsfarm_mixer_frame_seconds",
            "Time to mix and send one 20 ms frame (one tick)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.04, 0.1),
            registry=r,
        )
        self.overruns = Counter(
            "fsfarm_mixer_overruns", "Late ticks: frames that finished after the next was due", registry=r
        )
        self.participants = Gauge("fsfarm_mixer_participants", "Legs currently mixed", registry=r)
        self.rooms = Gauge("fsfarm_mixer_rooms", "Rooms on this mixer", registry=r)
        self.packets_in = Counter("fsfarm_mixer_packets_received", "RTP packets accepted", registry=r)
        self.packets_out = Counter("fsfarm_mixer_packets_sent", "RTP packets sent", registry=r)
        self.packets_lost = Counter("fsfarm_mixer_packets_lost", "Frames missing at playout (concealed)", registry=r)
        self.bad_packets = Counter(
            "fsfarm_mixer_bad_packets", "Datagrams dropped on the RTP port", ["reason"], registry=r
        )
        self.socket_calls = Counter(
            "fsfarm_mixer_socket_calls",
            "System calls on the RTP socket (recvmmsg/sendmmsg read or send a whole batch in one)",
            ["op"],
            registry=r,
        )
        self.filed = Counter(
            "fsfarm_mixer_packets_filed",
            "RTP packets accepted, by path: a batch at a time (a leg's next packet) or one by one (the rest)",
            ["path"],
            registry=r,
        )
        self.encodes = Counter("fsfarm_mixer_encodes", "Frames encoded (one per distinct mix and codec)", registry=r)
        self.encodes_saved = Counter(
            "fsfarm_mixer_encodes_saved",
            "Encodes not done because legs hearing the same mix shared one payload",
            registry=r,
        )
        self.media_errors = Counter(
            "fsfarm_mixer_media_errors",
            "Failures the media loop contained (decode: one leg's payload; room: one room's frame)",
            ["stage"],
            registry=r,
        )

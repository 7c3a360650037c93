"""The SIP side: the SIP socket and its own thread, driving a ``SipUas`` over a ``Conference``.

It never holds the media lock: a datagram is parsed and answered under this side's own lock
(which guards the dialog table); the Conference calls it makes (join, update, leave) take the
media loop's lock only for the change itself.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mixer_ext.sip import Address, Conference, Leg, SipUas

log = logging.getLogger(__name__)


class SipSide:
    """Receives SIP, answers it, and sends the BYEs the control API asks for."""

    def __init__(self, host: str, port: int, advertise: str, conference: Conference) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port: int = self.sock.getsockname()[1]
        self.uas = SipUas(conference, advertise, self.port)
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Answer datagrams until ``stop`` is set; one bad message never ends the loop."""
        self.sock.settimeout(0.2)
        while not stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if stop.is_set():
                    return
                continue
            try:
                with self._lock:
                    replies = self.uas.handle(data, source)
                for out, dest in replies:
                    self.sock.sendto(out, dest)
            except Exception:
                log.exception("SIP message from %s:%s failed", *source)

    def adopt(self, leg: Leg) -> None:
        """Take over a dialog created by another mixer (room import)."""
        with self._lock:
            self.uas.adopt(leg)

    def hang_up(self, call_id: str) -> None:
        """Send our BYE for a leg and forget its dialog (nothing if there is none)."""
        with self._lock:
            bye = self.uas.bye(call_id)
        if bye is None:
            return
        try:
            self.sock.sendto(*bye)
        except OSError as exc:
            log.warning("BYE to %s failed: %s", bye[1], exc)

    def collector(self) -> Collector:
        """The SIP message counters as a Prometheus collector."""
        return _SipCounters(self.uas)

    def close(self) -> None:
        self.sock.close()


class _SipCounters(Collector):
    def __init__(self, uas: SipUas) -> None:
        self._uas = uas

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("fsfarm_mixer_sip_messages", "SIP datagrams by kind or outcome", labels=["kind"])
        for kind, value in sorted(self._uas.counters.items()):
            family.add_metric([kind], value)
        yield family


__all__ = ["Address", "SipSide"]

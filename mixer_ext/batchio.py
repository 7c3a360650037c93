"""Batched UDP I/O for the media socket: one system call reads every waiting datagram, one sends a tick's.

On Linux, libc's ``recvmmsg(2)`` and ``sendmmsg(2)`` are called through ``ctypes`` (no C extension to
build) on preallocated numpy buffers: a receive arena of ``capacity`` slots of ``slot`` bytes, the
``mmsghdr`` / ``iovec`` / ``sockaddr_in`` arrays built once, so a call only rewrites a few numpy
columns. Elsewhere (or where ``ctypes`` cannot reach them) ``PlainIo`` does the same with one
``recvfrom_into`` / ``sendto`` per datagram behind the same interface. ``open_io`` picks one.

Both read into the same kind of ``Received`` (numpy views of the arena, valid until the next
``recv``), and both send ``heads`` (an ``[n x h]`` uint8 array, e.g. RTP headers built with numpy)
followed by ``bodies[i]`` to ``dests[i]``, reporting how many went and which failed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Address = tuple[str, int]

# 2048, not the 1500 of an Ethernet MTU: one 20 ms L16/48000 frame is 1,932 bytes.
SLOT = 2048
# UIO_MAXIOV: the kernel handles at most this many messages per recvmmsg/sendmmsg call.
CAPACITY = 1024
_SOCKADDR_IN = 16
# Plain ints: reading the socket module's IntFlag members costs an enum lookup on every call.
_MSG_TRUNC = int(socket.MSG_TRUNC)
_MSG_DONTWAIT = int(socket.MSG_DONTWAIT)
# struct mmsghdr on 64-bit Linux: struct msghdr (56 bytes) then unsigned msg_len, padded to 64.
_MMSGHDR = np.dtype(
    {
        "names": ["name", "namelen", "iov", "iovlen", "control", "controllen", "flags", "len"],
        "formats": [np.uint64, np.uint32, np.uint64, np.uint64, np.uint64, np.uint64, np.int32, np.uint32],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
    }
)
_IOVEC = np.dtype([("base", np.uint64), ("len", np.uint64)])
# sockaddr_in bytes 2-7 (port, then IPv4 address, both in network order) folded into one integer.
_KEY_SHIFTS = np.array([40, 32, 24, 16, 8, 0], dtype=np.uint64)
_NO_KEYS = np.zeros(0, dtype=np.uint64)


def address_key(address: Address) -> int:
    """An IPv4 (host, port) as the one integer ``Received.keys`` holds: port << 32 | address (0 if not IPv4)."""
    try:
        return (address[1] << 32) | int.from_bytes(socket.inet_aton(address[0]), "big")
    except (OSError, TypeError, ValueError, OverflowError):
        return 0


class Received:
    """What one ``recv`` read: rows ``[:count]`` of the arena, valid until the next ``recv``."""

    def __init__(
        self,
        count: int,
        arena: np.ndarray,
        lengths: np.ndarray,
        truncated: np.ndarray,
        keys: np.ndarray,
        flat: memoryview,
        calls: int = 1,
        sources: list[Address] | None = None,
        resolve: Callable[[np.ndarray], list[Address]] | None = None,
    ) -> None:
        self.count = count
        self.arena = arena  # uint8 [count x slot]: each datagram from byte 0 of its row
        self.lengths = lengths  # bytes of each datagram that are in its row
        self.truncated = truncated  # bool: the datagram was longer than a slot (its row holds the start only)
        self.keys = keys  # uint64: each source as address_key gives it
        self.flat = flat  # the whole arena: row i starts at i x slot
        self.calls = calls  # system calls the read took
        self._sources = sources
        self._resolve = resolve

    @property
    def sources(self) -> list[Address]:
        """Each datagram's (host, port), made only when asked for (the batch path needs the keys only)."""
        if self._sources is None:
            self._sources = self._resolve(self.keys) if self._resolve is not None else []
        return self._sources

    def data(self, i: int, start: int = 0) -> bytes:
        """Datagram ``i`` from byte ``start`` on, as bytes of its own."""
        base = i * self.arena.shape[1]
        return self.flat[base + start : base + int(self.lengths[i])].tobytes()


@dataclass
class Sent:
    """What one ``send`` did: how many datagrams went, and the ones that did not with their error."""

    sent: int = 0
    failed: list[tuple[Address, Exception]] = field(default_factory=list)
    calls: int = 0  # system calls the sends took


class OutBatch:
    """Datagrams the caller lays out in arrays it keeps filling: message i is the first ``head +
    lengths[slot]`` bytes of row ``slot`` of a ``[rows x width]`` uint8 buffer, to ``dests[i]``.

    Built once while the legs and their addresses stay the same; each tick only rewrites the rows
    (and ``lengths``). The system call's arrays for it are made on its first send and kept with it."""

    def __init__(self) -> None:
        self.segments: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        self.dests: list[Address] = []
        self.prepared: object | None = None  # the implementation's arrays for this batch

    def add(self, rows: np.ndarray, slots: np.ndarray, lengths: np.ndarray, head: int, dests: list[Address]) -> None:
        """Send row ``slots[i]`` of ``rows`` (``head + lengths[slots[i]]`` bytes) to ``dests[i]``."""
        if len(slots):
            self.segments.append((rows, np.asarray(slots, dtype=np.intp), lengths, head))
            self.dests.extend(dests)

    def __len__(self) -> int:
        return len(self.dests)

    def sizes(self) -> np.ndarray:
        """Every message's length in bytes as the rows say now."""
        if not self.segments:
            return np.zeros(0, dtype=np.uint64)
        return np.concatenate([head + lengths[slots] for _, slots, lengths, head in self.segments]).astype(np.uint64)


class DatagramIo(Protocol):
    """The media socket's reads and writes, a batch at a time."""

    capacity: int

    def recv(self) -> Received:
        """Every datagram waiting, up to ``capacity`` (count 0: nothing waiting)."""
        ...

    def send(self, heads: np.ndarray, bodies: Sequence[bytes], dests: Sequence[Address]) -> Sent:
        """Send ``heads[i]`` + ``bodies[i]`` to ``dests[i]`` for every i, back to back."""
        ...

    def send_batch(self, batch: OutBatch) -> Sent:
        """Send every message of ``batch`` as its rows hold it now, back to back."""
        ...


class _Arena:
    """The receive buffers shared by both implementations, and the source-address cache."""

    def __init__(self, capacity: int, slot: int) -> None:
        self.capacity = capacity
        self.arena = np.zeros((capacity, slot), dtype=np.uint8)
        self.flat = memoryview(self.arena.reshape(-1))
        self.lengths = np.zeros(capacity, dtype=np.intp)
        self.truncated = np.zeros(capacity, dtype=bool)

    def received(
        self,
        count: int,
        keys: np.ndarray,
        calls: int = 1,
        sources: list[Address] | None = None,
        resolve: Callable[[np.ndarray], list[Address]] | None = None,
    ) -> Received:
        arena, lengths, truncated = self.arena[:count], self.lengths[:count], self.truncated[:count]
        return Received(count, arena, lengths, truncated, keys, self.flat, calls, sources, resolve)


class PlainIo(_Arena):
    """One system call per datagram: the fallback where ``recvmmsg``/``sendmmsg`` are out of reach."""

    def __init__(self, sock: socket.socket, capacity: int = CAPACITY, slot: int = SLOT) -> None:
        super().__init__(capacity, slot)
        self.sock = sock
        self._rows = [memoryview(self.arena[i]) for i in range(capacity)]

    def recv(self) -> Received:
        """Every datagram waiting, up to ``capacity``, each with its own ``recvfrom_into``."""
        sources: list[Address] = []
        recv = self.sock.recvfrom_into
        rows = self._rows
        full = self.arena.shape[1]
        count = 0
        while count < self.capacity:
            try:
                nbytes, source = recv(rows[count])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # e.g. ICMP port unreachable reported on the socket; nothing to read
            self.lengths[count] = nbytes
            # recvfrom_into cannot tell a datagram that filled its slot from a longer one: both count as cut.
            self.truncated[count] = nbytes >= full
            sources.append(source)
            count += 1
        keys = np.fromiter((address_key(source) for source in sources), dtype=np.uint64, count=count)
        # One call per datagram, and the one that found the socket empty (unless capacity stopped it).
        return self.received(count, keys, count + (count < self.capacity), sources)

    def send(self, heads: np.ndarray, bodies: Sequence[bytes], dests: Sequence[Address]) -> Sent:
        """One ``sendto`` per datagram."""
        report = Sent()
        sendto = self.sock.sendto
        flat = heads.tobytes()
        width = heads.shape[1] if heads.ndim == 2 else 0
        for i, (body, dest) in enumerate(zip(bodies, dests, strict=True)):
            report.calls += 1
            try:
                sendto(flat[i * width : (i + 1) * width] + body, dest)
                report.sent += 1
            except (OSError, OverflowError, ValueError, TypeError) as exc:
                report.failed.append((dest, exc))
        return report

    def send_batch(self, batch: OutBatch) -> Sent:
        """One ``sendto`` per message."""
        report = Sent()
        sendto = self.sock.sendto
        dests = iter(batch.dests)
        for rows, slots, lengths, head in batch.segments:
            for slot, size in zip(slots.tolist(), (head + lengths[slots]).tolist(), strict=True):
                dest = next(dests)
                report.calls += 1
                try:
                    sendto(memoryview(rows[slot])[:size], dest)
                    report.sent += 1
                except (OSError, OverflowError, ValueError, TypeError) as exc:
                    report.failed.append((dest, exc))
        return report


@dataclass
class _Prepared:
    """The sendmmsg arrays of one OutBatch: kept messages, their iovecs (one each) and sockaddrs."""

    keep: np.ndarray  # indices of the batch's messages whose destination is a usable address
    msgs: np.ndarray
    iov: np.ndarray
    names: np.ndarray
    dests: list[Address]
    refused: list[tuple[Address, Exception]]
    rows: list[np.ndarray]  # the buffers the iovecs point into, kept alive with them
    lens: np.ndarray  # iov["len"], the one field a send rewrites


class MmsgIo(_Arena):
    """``recvmmsg``/``sendmmsg`` through ctypes on preallocated arrays (Linux, 64-bit)."""

    def __init__(self, sock: socket.socket, capacity: int = CAPACITY, slot: int = SLOT) -> None:
        super().__init__(capacity, slot)
        if _LIBC is None:
            raise OSError("recvmmsg/sendmmsg are not available here")
        self.sock = sock
        self.slot = slot
        self._fd = sock.fileno()
        # Receiving: message i reads into arena row i and its source into names row i.
        self._rnames = np.zeros((capacity, _SOCKADDR_IN), dtype=np.uint8)
        self._riov = np.zeros(capacity, dtype=_IOVEC)
        self._riov["base"] = self.arena.ctypes.data + slot * np.arange(capacity, dtype=np.uint64)
        self._riov["len"] = slot
        self._rmsg = np.zeros(capacity, dtype=_MMSGHDR)
        self._rmsg["name"] = self._rnames.ctypes.data + _SOCKADDR_IN * np.arange(capacity, dtype=np.uint64)
        self._rmsg["iov"] = self._riov.ctypes.data + _IOVEC.itemsize * np.arange(capacity, dtype=np.uint64)
        self._rmsg["iovlen"] = 1
        self._rmsg_ptr = ctypes.c_void_p(self._rmsg.ctypes.data)
        self._rmsg["namelen"] = _SOCKADDR_IN
        self._written = 0  # messages whose namelen the last call overwrote
        # The fields every call reads or resets, looked up once (a field lookup costs a call).
        self._rnamelen, self._rlen, self._rflags = self._rmsg["namelen"], self._rmsg["len"], self._rmsg["flags"]
        # Sending: message i is two iovecs (head, body) to names row i; only the iovecs change per call.
        self._snames = np.zeros((capacity, _SOCKADDR_IN), dtype=np.uint8)
        self._siov = np.zeros(2 * capacity, dtype=_IOVEC)
        self._smsg = np.zeros(capacity, dtype=_MMSGHDR)
        self._smsg["name"] = self._snames.ctypes.data + _SOCKADDR_IN * np.arange(capacity, dtype=np.uint64)
        self._smsg["namelen"] = _SOCKADDR_IN
        self._smsg["iov"] = self._siov.ctypes.data + 2 * _IOVEC.itemsize * np.arange(capacity, dtype=np.uint64)
        self._smsg["iovlen"] = 2
        self._sources: dict[int, Address] = {}
        self._sockaddrs: dict[Address, bytes] = {}

    def recv(self) -> Received:
        """Every datagram waiting, up to ``capacity``, in one ``recvmmsg``."""
        if self.sock.fileno() < 0:
            return self.received(0, _NO_KEYS, 0)  # closed by a stopping mixer: its number may be another file's now
        if self._written:
            self._rnamelen[: self._written] = _SOCKADDR_IN  # the kernel wrote back each source's length
        got = _LIBC.recvmmsg(self._fd, self._rmsg_ptr, self.capacity, _MSG_DONTWAIT, None)  # type: ignore[union-attr]
        self._written = max(got, 0)
        if got <= 0:
            return self.received(0, _NO_KEYS)  # EAGAIN, or a pending ICMP error the call consumed
        self.lengths[:got] = self._rlen[:got]
        self.truncated[:got] = (self._rflags[:got] & _MSG_TRUNC) != 0
        names = self._rnames[:got]
        # Port and IPv4 address as one integer: the legs are found by it, (host, port) made only when asked.
        keys = (names[:, 2:8].astype(np.uint64) << _KEY_SHIFTS).sum(axis=1)
        return self.received(got, keys, resolve=self._resolve)

    def _resolve(self, keys: np.ndarray) -> list[Address]:
        cache = self._sources
        key_list = keys.tolist()
        sources = list(map(cache.get, key_list))  # known sources (nearly all) without a Python-level loop
        if None in sources:
            for i, key in enumerate(key_list):
                if sources[i] is None:
                    if len(cache) > 65536:
                        cache.clear()  # spoofed sources cannot grow it without bound
                    sources[i] = cache[key] = (socket.inet_ntoa((key & 0xFFFFFFFF).to_bytes(4, "big")), key >> 32)
        return sources  # type: ignore[return-value]

    def send(self, heads: np.ndarray, bodies: Sequence[bytes], dests: Sequence[Address]) -> Sent:
        """Every datagram in one ``sendmmsg`` per ``capacity`` of them; a refused one is skipped."""
        report = Sent()
        heads = np.ascontiguousarray(heads, dtype=np.uint8)
        for start in range(0, len(bodies), self.capacity):
            end = min(start + self.capacity, len(bodies))
            self._send_chunk(heads[start:end], bodies[start:end], dests[start:end], report)
        return report

    def _send_chunk(self, heads: np.ndarray, bodies: Sequence[bytes], dests: Sequence[Address], report: Sent) -> None:
        sockaddrs = self._sockaddrs
        names = list(map(sockaddrs.get, dests))  # destinations seen before (nearly all)
        keep = None  # the rows whose destination is a usable address, when some are not
        if None in names:
            keep = []
            for i, dest in enumerate(dests):
                if names[i] is None:
                    try:
                        names[i] = _sockaddr(dest)
                    except (OSError, OverflowError, ValueError, TypeError) as exc:
                        report.failed.append((dest, exc))
                        continue
                    if len(sockaddrs) > 65536:
                        sockaddrs.clear()
                    sockaddrs[dest] = names[i]  # type: ignore[assignment]
                keep.append(i)
            names = [names[i] for i in keep]
        n = len(names)
        if n == 0:
            return
        if keep is not None and n < len(bodies):
            heads = heads[keep]
            bodies = [bodies[i] for i in keep]
            dests = [dests[i] for i in keep]
        self._snames[:n] = np.frombuffer(b"".join(names), dtype=np.uint8).reshape(n, _SOCKADDR_IN)  # type: ignore[arg-type]
        blob = np.frombuffer(b"".join(bodies), dtype=np.uint8)  # read in place by the kernel, kept alive here
        lengths = np.fromiter(map(len, bodies), dtype=np.uint64, count=n)
        width = heads.shape[1]
        iov = self._siov
        iov["base"][0 : 2 * n : 2] = heads.ctypes.data + width * np.arange(n, dtype=np.uint64)
        iov["len"][0 : 2 * n : 2] = width
        iov["base"][1 : 2 * n : 2] = blob.ctypes.data + np.cumsum(lengths) - lengths
        iov["len"][1 : 2 * n : 2] = lengths
        if self.sock.fileno() < 0:
            return  # closed by a stopping mixer: nothing is sent, and its fd number may be another file's
        self._sendmmsg(self._smsg.ctypes.data, n, n, dests, report)
        del heads, blob

    def send_batch(self, batch: OutBatch) -> Sent:
        """Every message in one ``sendmmsg`` per ``capacity`` of them; only the lengths are rewritten."""
        report = Sent()
        prepared = batch.prepared
        if not isinstance(prepared, _Prepared):
            prepared = batch.prepared = self._prepare(batch)
        report.failed.extend(prepared.refused)
        n = len(prepared.keep)
        if n == 0 or self.sock.fileno() < 0:
            return report  # nothing usable, or closed by a stopping mixer (its fd number may be another file's)
        if len(batch.segments) == 1 and n == len(batch.dests):
            # One lane, every destination usable: the lengths go straight into the iovecs, no concatenation.
            _, slots, lengths, head = batch.segments[0]
            np.add(lengths[slots], head, out=prepared.lens, casting="unsafe")
        else:
            sizes = batch.sizes()
            prepared.lens[:] = sizes if n == len(sizes) else sizes[prepared.keep]
        self._sendmmsg(prepared.msgs.ctypes.data, n, self.capacity, prepared.dests, report)
        return report

    def _sendmmsg(self, base: int, n: int, limit: int, dests: Sequence[Address], report: Sent) -> None:
        """Send the ``n`` messages of the mmsghdr array at ``base``, at most ``limit`` per call, into ``report``."""
        done = 0
        while done < n:
            report.calls += 1
            count = min(n - done, limit)
            got = _LIBC.sendmmsg(self._fd, ctypes.c_void_p(base + done * _MMSGHDR.itemsize), count, 0)  # type: ignore[union-attr]
            if got > 0:
                done += got
                report.sent += got
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            # The first datagram left was refused (a full buffer, an ICMP error): skip it, send the rest.
            report.failed.append((dests[done], OSError(code, os.strerror(code))))
            done += 1

    def _prepare(self, batch: OutBatch) -> _Prepared:
        sockaddrs = self._sockaddrs
        names: list[bytes] = []
        keep: list[int] = []
        refused: list[tuple[Address, Exception]] = []
        for i, dest in enumerate(batch.dests):
            name = sockaddrs.get(dest)
            if name is None:
                try:
                    name = _sockaddr(dest)
                except (OSError, OverflowError, ValueError, TypeError) as exc:
                    refused.append((dest, exc))
                    continue
                if len(sockaddrs) > 65536:
                    sockaddrs.clear()
                sockaddrs[dest] = name
            names.append(name)
            keep.append(i)
        n = len(keep)
        starts = [rows.ctypes.data + slots.astype(np.uint64) * rows.strides[0] for rows, slots, _, _ in batch.segments]
        bases = np.concatenate(starts) if starts else np.zeros(0, dtype=np.uint64)
        kept = np.array(keep, dtype=np.intp)
        iov = np.zeros(n, dtype=_IOVEC)
        iov["base"] = bases[kept]
        name_array = np.frombuffer(b"".join(names), dtype=np.uint8).reshape(n, _SOCKADDR_IN).copy()
        msgs = np.zeros(n, dtype=_MMSGHDR)
        msgs["name"] = name_array.ctypes.data + _SOCKADDR_IN * np.arange(n, dtype=np.uint64)
        msgs["namelen"] = _SOCKADDR_IN
        msgs["iov"] = iov.ctypes.data + _IOVEC.itemsize * np.arange(n, dtype=np.uint64)
        msgs["iovlen"] = 1
        dests = [batch.dests[i] for i in keep]
        segments = [rows for rows, _, _, _ in batch.segments]
        return _Prepared(kept, msgs, iov, name_array, dests, refused, segments, iov["len"])


def _sockaddr(dest: Address) -> bytes:
    host, port = dest
    family = struct.pack("=H", socket.AF_INET)  # sin_family is in host order, the port in network order
    return family + struct.pack("!H", port) + socket.inet_pton(socket.AF_INET, host) + bytes(8)


def _load_libc() -> ctypes.CDLL | None:
    """libc with recvmmsg/sendmmsg typed, or None where they cannot be called safely."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8 or sys.byteorder != "little":
        return None  # the mmsghdr layout above is 64-bit little-endian Linux's (glibc and musl alike)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    sendmmsg.restype = ctypes.c_int
    return libc


_LIBC = _load_libc()
BATCHED = _LIBC is not None


def open_io(sock: socket.socket, batched: bool = True, capacity: int = CAPACITY, slot: int = SLOT) -> DatagramIo:
    """The batched implementation for a non-blocking IPv4 UDP socket where it works, else the plain one."""
    if batched and BATCHED and sock.family == socket.AF_INET:
        return MmsgIo(sock, capacity, slot)
    return PlainIo(sock, capacity, slot)

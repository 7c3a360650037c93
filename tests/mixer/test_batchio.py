"""Batched socket I/O on real loopback sockets: recvmmsg/sendmmsg through ctypes, and the plain fallback.

Both implementations must read and send the same datagrams: packets in and out in order with their
sources, a datagram longer than a slot marked truncated, an empty socket read as nothing (EAGAIN), more
waiting than one call holds read over several calls, and a refused destination skipped, not fatal.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from mixer_testkit import LOCAL, Swarm
from test_audio import assert_hears_others_not_self, join

from mixer_ext import batchio
from mixer_ext.batchio import DatagramIo, MmsgIo, OutBatch, PlainIo
from mixer_ext.engine import Mixer

IMPLEMENTATIONS = [PlainIo] + ([MmsgIo] if batchio.BATCHED else [])


def udp(host: str = LOCAL) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = udp(), udp("127.0.0.2")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def wait_readable(sock: socket.socket) -> None:
    """Loopback delivers at once, but give a loaded machine a moment before reading."""
    sock.settimeout(2)
    try:
        sock.recv(1, socket.MSG_PEEK)
    finally:
        sock.setblocking(False)


def read_all(io: DatagramIo, sock: socket.socket, expected: int) -> list[tuple[bytes, tuple[str, int]]]:
    got: list[tuple[bytes, tuple[str, int]]] = []
    deadline = time.monotonic() + 5
    while len(got) < expected and time.monotonic() < deadline:
        batch = io.recv()
        got += [(batch.data(i), batch.sources[i]) for i in range(batch.count)]
        if batch.count == 0:
            time.sleep(0.01)
    return got


def test_libc_batching_is_used_on_linux() -> None:
    if not batchio.BATCHED:
        pytest.skip("recvmmsg/sendmmsg not reachable through ctypes here: the plain fallback is used")
    with udp() as sock:
        assert isinstance(batchio.open_io(sock), MmsgIo)
        assert isinstance(batchio.open_io(sock, batched=False), PlainIo)


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_an_empty_socket_reads_nothing(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    io = kind(pair[0])
    batch = io.recv()
    assert batch.count == 0 and batch.sources == []
    assert io.recv().count == 0  # EAGAIN again, still no error


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_every_waiting_datagram_is_read_with_its_source_in_order(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    c = udp("127.0.0.3")
    sources = [b.getsockname() if i % 2 else c.getsockname() for i in range(20)]
    sent = [bytes([i]) * (12 + 37 * i) for i in range(20)]
    try:
        for i, data in enumerate(sent):
            (b if i % 2 else c).sendto(data, a.getsockname())
        wait_readable(a)
        got = read_all(kind(a), a, len(sent))
    finally:
        c.close()
    assert [data for data, _ in got] == sent
    assert [source for _, source in got] == sources


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_a_datagram_longer_than_a_slot_is_marked_truncated(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    b.sendto(b"x" * 3000, a.getsockname())
    b.sendto(b"after", a.getsockname())
    wait_readable(a)
    io = kind(a)
    batch = io.recv()
    if batch.count < 2:  # the second one still on its way on a loaded machine
        rest = read_all(io, a, 1)
        assert rest == [(b"after", b.getsockname())]
        assert batch.count == 1 and batch.truncated.tolist() == [True]
    else:
        assert batch.truncated.tolist() == [True, False]
        assert batch.data(1) == b"after"
    assert batch.data(0) == b"x" * batchio.SLOT  # the start of it, and the next datagram is intact


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_more_datagrams_than_one_call_holds_are_read_over_several(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    for i in range(10):
        b.sendto(i.to_bytes(2, "big"), a.getsockname())
    wait_readable(a)
    io = kind(a, capacity=4)
    first = io.recv()
    assert first.count == 4
    assert [first.data(i) for i in range(4)] == [i.to_bytes(2, "big") for i in range(4)]
    rest = read_all(io, a, 6)
    assert [data for data, _ in rest] == [i.to_bytes(2, "big") for i in range(4, 10)]


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_heads_and_bodies_arrive_as_one_datagram_each_at_their_destination(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    a = pair[0]
    # Eight receivers of 1500 // 8 datagrams each: within a default receive buffer (no drops to flake on).
    receivers = [udp(f"127.0.0.{10 + i}") for i in range(8)]
    try:
        n = 1500  # more than one sendmmsg call takes (1024)
        heads = np.arange(n * 12, dtype=np.uint32).astype(np.uint8).reshape(n, 12)
        bodies = [bytes([i % 251]) * (i % 160) for i in range(n)]
        dests = [receivers[i % 8].getsockname() for i in range(n)]
        want = [[heads[i].tobytes() + bodies[i] for i in range(r, n, 8)] for r in range(8)]
        report = kind(a).send(heads, bodies, dests)
        assert report.sent == n and report.failed == []
        got = [read_all(PlainIo(sock), sock, len(want[r])) for r, sock in enumerate(receivers)]
    finally:
        for sock in receivers:
            sock.close()
    assert [[data for data, _ in at] for at in got] == want
    assert {source for at in got for _, source in at} == {a.getsockname()}


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_a_refused_destination_is_reported_and_the_others_still_sent(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    heads = np.zeros((4, 12), dtype=np.uint8)
    bodies = [b"one", b"two", b"three", b"four"]
    # Broadcast without SO_BROADCAST is refused by the kernel (EACCES); a host name no socket takes.
    dests = [b.getsockname(), ("255.255.255.255", 9), ("not an address", 9), b.getsockname()]
    report = kind(a).send(heads, bodies, dests)
    assert report.sent == 2
    assert sorted(dest for dest, _ in report.failed) == [("255.255.255.255", 9), ("not an address", 9)]
    assert all(isinstance(exc, OSError) for _, exc in report.failed)
    got = read_all(PlainIo(b), b, 2)
    assert [data[12:] for data, _ in got] == [b"one", b"four"]


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_a_batch_of_rows_is_sent_in_place_as_the_rows_hold_it_at_each_send(
    kind: Callable[..., DatagramIo], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    other = udp("127.0.0.3")
    try:
        rows = np.zeros((6, 12 + 20), dtype=np.uint8)
        lengths = np.zeros(6, dtype=np.intp)
        out = OutBatch()
        # Rows 4 and 1 of the first buffer (in that order), an address no socket takes, then row 0 of another.
        out.add(rows, np.array([4, 1]), lengths, 12, [b.getsockname(), other.getsockname()])
        out.add(rows, np.array([2]), lengths, 12, [("not an address", 9)])
        extra = np.full((1, 12 + 20), 7, dtype=np.uint8)
        out.add(extra, np.array([0]), np.array([3]), 12, [b.getsockname()])
        io = kind(a)
        for frame in (1, 2):  # the second send reuses the batch: new contents and lengths, same rows
            rows[:, :12] = frame
            rows[:, 12:] = np.arange(20) + frame
            lengths[:] = 5 * frame
            report = io.send_batch(out)
            assert report.sent == 3
            assert [dest for dest, _ in report.failed] == [("not an address", 9)]
            body = (bytes([frame]) * 12) + bytes(range(frame, frame + 5 * frame))
            assert [data for data, _ in read_all(PlainIo(b), b, 2)] == [body, bytes([7]) * 15]
            assert [data for data, _ in read_all(PlainIo(other), other, 1)] == [body]
    finally:
        other.close()


def test_the_mixer_mixes_the_same_with_one_system_call_per_packet(swarm: Swarm) -> None:
    mixer = Mixer(LOCAL, batch_io=False).start()
    try:
        assert isinstance(mixer.media.io, PlainIo)
        mixer.create_room("plain", 8000)
        phones = join(mixer, swarm, "plain", [(400, "PCMU"), (650, "PCMA"), (1300, "L16/8000")])
        swarm.run(1.2)
        assert_hears_others_not_self(phones)
    finally:
        mixer.stop()


def test_the_mixer_sends_a_ticks_packets_in_one_system_call(mixer: Mixer, swarm: Swarm) -> None:
    if not batchio.BATCHED:
        pytest.skip("recvmmsg/sendmmsg not reachable through ctypes here: one call per packet")
    mixer.create_room("batched", 8000)
    phones = join(mixer, swarm, "batched", [(400, "PCMU"), (650, "PCMU"), (900, "PCMU"), (1300, "PCMU")])
    swarm.run(1.2)
    assert_hears_others_not_self(phones)
    registry = mixer.metrics.registry
    sent = registry.get_sample_value("fsfarm_mixer_packets_sent_total")
    send_calls = registry.get_sample_value("fsfarm_mixer_socket_calls_total", {"op": "send"})
    received = registry.get_sample_value("fsfarm_mixer_packets_received_total")
    recv_calls = registry.get_sample_value("fsfarm_mixer_socket_calls_total", {"op": "recv"})
    assert sent and send_calls and received and recv_calls
    # One sendmmsg per tick carries every leg's frame (four once all have joined): not one call per packet.
    assert send_calls <= mixer.frames
    assert send_calls * 2 <= sent
    # Reads: at most two calls per tick (the batch, and none left), never one per packet and one more.
    assert recv_calls <= 2 * mixer.frames
    assert recv_calls < received + mixer.frames
    # In-order RTP is filed a whole batch at a time: each stream's first packet goes one by one (and,
    # on a machine stalled long enough to fill a jitter buffer, the packets that have to trim it).
    batch = registry.get_sample_value("fsfarm_mixer_packets_filed_total", {"path": "batch"})
    alone = registry.get_sample_value("fsfarm_mixer_packets_filed_total", {"path": "one_by_one"})
    assert batch + alone == received
    assert alone >= len(phones) and batch >= 0.8 * received

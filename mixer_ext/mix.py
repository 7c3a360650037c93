"""The mixing kernel: pure numpy functions over one [participants x samples] block.

All participants of every room that share a sample rate go into one block, grouped so each
room's rows are contiguous (``room_of`` is non-decreasing). One call then mixes every room:
per-room sums, each participant's N-1 mix, gain, mute, deaf, saturation to int16, talker
detection and, for big rooms, mixing only the loudest K talkers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Mean-square energy of a -50 dBFS signal: below it a participant counts as silent.
DEFAULT_TALK_THRESHOLD = float((32768.0 * 10 ** (-50 / 20)) ** 2)
# Weight of the previous smoothed energy: about 60 ms of memory at 20 ms frames.
DEFAULT_SMOOTHING = 0.7

Int16Block = npt.NDArray[np.int16]
FloatVec = npt.NDArray[np.float32]
BoolVec = npt.NDArray[np.bool_]
IntVec = npt.NDArray[np.intp]


@dataclass(frozen=True)
class MixResult:
    """What one frame of mixing produced, row-aligned with the input block."""

    out: Int16Block  # [P x S] what each participant hears
    energy: FloatVec  # [P] smoothed mean-square energy (feed back as prev_energy next frame)
    talking: BoolVec  # [P] energy above the talk threshold
    mixed: BoolVec  # [P] this participant's audio went into its room's sum


def _per_row(value: npt.ArrayLike, n: int, dtype: type) -> np.ndarray:
    """``value`` as one entry per row: an array of that already as it is, a scalar broadcast."""
    array = np.asarray(value, dtype=dtype)
    # broadcast_to costs more than the rest of a small frame's bookkeeping: skip it when not needed.
    return array if array.shape == (n,) else np.broadcast_to(array, (n,))


def room_groups(room_of: npt.ArrayLike) -> tuple[IntVec, IntVec]:
    """Return (starts, group) for a non-decreasing room index: each room's first row, each row's room slot."""
    rooms = np.asarray(room_of)
    if rooms.ndim != 1:
        raise ValueError("room_of must be one-dimensional")
    if rooms.size and np.any(np.diff(rooms) < 0):
        raise ValueError("rows must be grouped by room (room_of non-decreasing)")
    change = np.empty(rooms.size, dtype=bool)
    if rooms.size:
        change[0] = True
        np.not_equal(rooms[1:], rooms[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    group = np.cumsum(change, dtype=np.intp) - 1
    return starts.astype(np.intp), group


@dataclass(frozen=True)
class RoomLayout:
    """How a block's rows fall into rooms, worked out once for as long as the rows stay the same."""

    starts: IntVec  # each room's first row
    group: IntVec  # each row's room
    classes: tuple[tuple[int, IntVec, IntVec], ...]  # (room size, those rooms, their rows in order)


def room_layout(room_of: npt.ArrayLike) -> RoomLayout:
    """The RoomLayout of a non-decreasing room index (rows grouped by room)."""
    starts, group = room_groups(room_of)
    sizes = np.diff(np.append(starts, group.size))
    classes = []
    for size in np.unique(sizes).tolist():
        rooms = np.flatnonzero(sizes == size)
        classes.append((size, rooms, (starts[rooms][:, None] + np.arange(size)).ravel()))
    return RoomLayout(starts, group, tuple(classes))


def room_sums(x: npt.NDArray[np.float32], layout: RoomLayout) -> npt.NDArray[np.float32]:
    """Sum each room's rows: [rooms x samples].

    ``np.add.reduceat`` over rows walks memory column by column and is ~20x slower for many
    small rooms, so rooms are summed by size class: same-size rooms are gathered and reduced as
    one [rooms x size x samples] array, a contiguous row-add numpy does at memory speed.
    """
    samples = x.shape[1]
    rooms_in_all = layout.starts.size
    if len(layout.classes) == 1:
        return x.reshape(rooms_in_all, layout.classes[0][0], samples).sum(axis=1)
    sums = np.empty((rooms_in_all, samples), dtype=x.dtype)
    for size, rooms, rows in layout.classes:
        if size == 1:
            sums[rooms] = x[rows]
            continue
        sums[rooms] = x[rows].reshape(rooms.size, size, samples).sum(axis=1)
    return sums


def frame_energy(pcm: npt.NDArray[np.floating] | Int16Block) -> FloatVec:
    """Mean-square energy of each row (float32), the talker detector's input."""
    x = np.asarray(pcm, dtype=np.float32)
    if x.shape[1] == 0:
        return np.zeros(x.shape[0], dtype=np.float32)
    energy = np.einsum("ij,ij->i", x, x)  # float32, as x is
    energy /= np.float32(x.shape[1])  # in place: the same division without a copy
    return energy


def loudest_k(energy: FloatVec, group: IntVec, starts: IntVec, k: npt.ArrayLike, eligible: BoolVec) -> BoolVec:
    """Select, per room, the ``k`` most energetic eligible rows (``k`` per row; 0 means no limit)."""
    limit = _per_row(k, energy.size, np.intp)
    if not np.any(limit > 0):
        return eligible.copy()
    # Ineligible rows sort last inside their room so they never take a slot.
    key = np.where(eligible, -energy.astype(np.float64), np.inf)
    order = np.lexsort((key, group))
    rank = np.empty(energy.size, dtype=np.intp)
    rank[order] = np.arange(energy.size, dtype=np.intp) - starts[group[order]]
    return eligible & ((limit == 0) | (rank < limit))


def mix_frame(
    pcm: Int16Block,
    room_of: npt.ArrayLike,
    gain: npt.ArrayLike | float = 1.0,
    muted: npt.ArrayLike | None = None,
    deaf: npt.ArrayLike | None = None,
    k: npt.ArrayLike | int = 0,
    prev_energy: FloatVec | None = None,
    talk_threshold: float = DEFAULT_TALK_THRESHOLD,
    smoothing: float = DEFAULT_SMOOTHING,
    layout: RoomLayout | None = None,
) -> MixResult:
    """Mix one frame for every room in the block.

    ``pcm`` is int16 [P x S]; ``room_of`` [P] groups rows by room (non-decreasing). ``gain`` scales
    what a participant contributes; ``muted`` rows are heard by nobody; ``deaf`` rows hear silence;
    ``k`` > 0 (per row, the room's setting) mixes only that room's K loudest talkers.
    Each participant hears the sum of the others (N-1), saturated to int16. ``layout`` is
    ``room_layout(room_of)`` made once by a caller whose rows stay the same from frame to frame.
    """
    block = np.asarray(pcm)
    if block.ndim != 2:
        raise ValueError("pcm must be [participants x samples]")
    n = block.shape[0]
    if layout is None:
        layout = room_layout(room_of)
    starts, group = layout.starts, layout.group
    if group.size != n:
        raise ValueError("room_of must have one entry per row")
    if n == 0:
        empty = np.zeros(0, dtype=np.float32)
        return MixResult(block.astype(np.int16), empty, empty.astype(bool), empty.astype(bool))
    mute_v = None if muted is None else np.asarray(muted, dtype=bool)
    deaf_v = None if deaf is None else np.asarray(deaf, dtype=bool)

    x = block.astype(np.float32)
    energy = frame_energy(x)
    if prev_energy is not None and prev_energy.shape == energy.shape:
        if prev_energy.dtype == np.float32:
            # The same float32 operations as below, in place: two copies fewer.
            smoothed = prev_energy * smoothing
            energy *= 1.0 - smoothing
            energy += smoothed
        else:
            energy = (smoothing * prev_energy + (1.0 - smoothing) * energy).astype(np.float32)
    talking = energy > talk_threshold
    limit = None if isinstance(k, int) and k == 0 else _per_row(k, n, np.intp)
    if limit is not None and not np.any(limit > 0):
        limit = None
    unmuted = np.ones(n, dtype=bool) if mute_v is None else ~mute_v
    if limit is not None:
        # With loudest-K on, silent rows are left out too: they would only add noise.
        mixed = loudest_k(energy, group, starts, limit, unmuted & (talking | (limit == 0)))
    else:
        mixed = unmuted  # no room limits its talkers: everyone unmuted goes into the sum

    if mute_v is not None or limit is not None or not (isinstance(gain, (int, float)) and gain == 1):
        # One multiply applies gain, mute and the loudest-K selection at once (none of them: nothing to do).
        x *= (_per_row(gain, n, np.float32) * mixed)[:, None]
    sums = room_sums(x, layout)
    out = np.take(sums, group, axis=0)
    np.subtract(out, x, out=out)
    if deaf_v is not None and deaf_v.any():
        out[deaf_v] = 0.0
    mixed_out = np.empty(block.shape, dtype=np.int16)
    np.clip(out, -32768.0, 32767.0, out=out)
    np.copyto(mixed_out, out, casting="unsafe")
    return MixResult(mixed_out, energy, talking, mixed)


def mix_reference(
    pcm: Int16Block,
    room_of: npt.ArrayLike,
    gain: npt.ArrayLike | float = 1.0,
    muted: npt.ArrayLike | None = None,
    deaf: npt.ArrayLike | None = None,
) -> Int16Block:
    """The straightforward per-participant loop the kernel is measured and checked against."""
    block = np.asarray(pcm)
    rooms = np.asarray(room_of)
    n = block.shape[0]
    gain_v = np.broadcast_to(np.asarray(gain, dtype=np.float32), (n,))
    mute_v = np.zeros(n, dtype=bool) if muted is None else np.asarray(muted, dtype=bool)
    deaf_v = np.zeros(n, dtype=bool) if deaf is None else np.asarray(deaf, dtype=bool)
    out = np.zeros(block.shape, dtype=np.int16)
    totals: dict[int, np.ndarray] = {}
    for j in range(n):
        if not mute_v[j]:
            row = block[j].astype(np.float32) * gain_v[j]
            room = int(rooms[j])
            totals[room] = totals[room] + row if room in totals else row
    for i in range(n):
        if deaf_v[i]:
            continue
        total = totals.get(int(rooms[i]), np.zeros(block.shape[1], dtype=np.float32))
        own = 0.0 if mute_v[i] else block[i].astype(np.float32) * gain_v[i]
        out[i] = np.clip(total - own, -32768, 32767).astype(np.int16)
    return out

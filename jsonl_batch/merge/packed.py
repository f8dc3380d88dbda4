"""The packed index entry: where one custom_id's output line is, in one Python int.

An int is the smallest thing a dict can hold per entry, and a merge keeps one entry per
custom_id. Bits, low to high:

====== ===============================================================
0      used: an input line has claimed this entry
1-2    rank: 0 no output line, 1 failure, 2 success
3-18   shard position + 1 (0: not known)
19-34  result file index + 1 (0: no output line)
35-66  the output line's length in bytes
67     plain success: the line is exactly as the services write a success
68+    the output line's byte offset in its file
====== ===============================================================

This module is the only one that knows the layout; the hot loops in ``index`` and ``join``
inline the shifts below for speed.
"""

from __future__ import annotations

USED = 1
RANK_SHIFT, SHARD_SHIFT, FILE_SHIFT, LEN_SHIFT, OFF_SHIFT = 1, 3, 19, 35, 68
FIELD16, LEN_MASK = 0xFFFF, 0xFFFFFFFF
# A success line exactly as the services write it (compact, keys id, custom_id, response
# {status_code, request_id, body}, error null): pass 2 copies its body without parsing it.
PLAIN = 1 << 67
SHARD_BITS = FIELD16 << SHARD_SHIFT
FILE_BITS = FIELD16 << FILE_SHIFT
RANK_SUCCESS, RANK_FAILURE = 2, 1
MAX_FILES = FIELD16 - 1  # result files, and shards, one merge can name


def pack(offset: int, length: int, file_index: int, rank: int) -> int:
    """An entry for an output line (``file_index`` 0-based); no shard, not used."""
    return (
        (offset << OFF_SHIFT)
        | (length << LEN_SHIFT)
        | ((file_index + 1) << FILE_SHIFT)
        | (rank << RANK_SHIFT)
    )


def membership(shard_position: int) -> int:
    """A placeholder entry: the custom_id was sent in this shard, no output line yet."""
    return (shard_position + 1) << SHARD_SHIFT


def file_of(packed: int) -> int:
    """Result file index, or -1 when the entry has no output line."""
    return ((packed >> FILE_SHIFT) & FIELD16) - 1


def shard_of(packed: int) -> int | None:
    """Shard position, or None when not known."""
    shard = ((packed >> SHARD_SHIFT) & FIELD16) - 1
    return None if shard < 0 else shard


def rank_of(packed: int) -> int:
    return (packed >> RANK_SHIFT) & 3


def offset_of(packed: int) -> int:
    return packed >> OFF_SHIFT


def length_of(packed: int) -> int:
    return (packed >> LEN_SHIFT) & LEN_MASK


def with_shard_of(packed: int, other: int) -> int:
    """``packed`` with the shard bits of ``other``."""
    return (packed & ~SHARD_BITS) | (other & SHARD_BITS)

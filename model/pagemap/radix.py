"""The radix tree as the page map uses it (kern/src/radix.c at the commit).

What the page map relies on, and nothing more:

* ``radix_insert`` fails with EEXIST when the leaf slot holds *any* non-zero
  word (a slot whose page was removed but whose flag bits remain counts);
* ``radix_lookup_slot`` returns the slot's address (its key, here), or NULL
  when the key is beyond the tree (no leaf yet);
* ``radix_delete`` zeroes the slot and returns the old word; deleting a zero
  slot only warns.

Scenarios have at most 64 file pages, so the tree is one leaf, which is also
the root: the first insert creates it (depth 1) and the root is never freed.
Slot addresses are therefore stable for the whole run and ``pg_tree_slot``
never dangles; the model names a slot by its key (spec/deviations.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import icontract

RADIX_SLOTS = 64  # 1 << LOG_RNODE_SLOTS
EEXIST = 17
ENOMEM = 12


@dataclass(frozen=True)
class Radix:
    depth: int  # 0: empty tree, no leaf; 1: one leaf of 64 slots
    slots: tuple[int, ...]  # slot words for keys 0..len-1


def radix_ok(t: Radix) -> bool:
    return t.depth in (0, 1) and len(t.slots) <= RADIX_SLOTS and all(w >= 0 for w in t.slots)


def _same_except(before: tuple[int, ...], after: tuple[int, ...], key: int) -> bool:
    """The frame of a one-slot update: same size, every other slot unchanged."""
    return len(before) == len(after) and all(
        a == b for j, (a, b) in enumerate(zip(before, after, strict=True)) if j != key)


@icontract.require(lambda depth: depth in (0, 1))
@icontract.require(lambda key: 0 <= key < RADIX_SLOTS, "scenarios have at most 64 file pages")
@icontract.ensure(lambda depth, result: result == (depth >= 1))
def radix_has_leaf(depth: int, key: int) -> bool:
    """Whether radix_lookup_slot(key) finds a leaf: key < 64**depth, depth >= 1."""
    return depth >= 1 and key < RADIX_SLOTS**depth


@icontract.require(lambda t: radix_ok(t))
@icontract.require(lambda t, key: 0 <= key < len(t.slots))
@icontract.ensure(lambda t, key, result: result == (key if t.depth == 1 else None))
def radix_lookup_slot(t: Radix, key: int) -> int | None:
    """radix_lookup_slot: the slot for key (named by its key), or None (NULL)."""
    return key if radix_has_leaf(t.depth, key) else None


@icontract.require(lambda t: radix_ok(t))
@icontract.require(lambda t, key: 0 <= key < len(t.slots))
@icontract.require(lambda item: item > 0, "the page map inserts a non-zero word")
@icontract.ensure(
    lambda t, grow_ok, result: (result[0] == ENOMEM) == (t.depth == 0 and not grow_ok),
    "-ENOMEM exactly when the root must be allocated and that fails",
)
@icontract.ensure(
    lambda t, key, result: result[0] == ENOMEM or (result[0] == EEXIST) == (t.slots[key] != 0)
)
@icontract.ensure(lambda key, item, result: result[0] != 0 or result[1].slots[key] == item)
@icontract.ensure(
    lambda t, result: result[1].depth == t.depth if result[0] == ENOMEM
    else (result[1].depth == 1 and radix_ok(result[1])),
    "the tree has its leaf; on -ENOMEM it is the tree it was",
)
@icontract.ensure(
    lambda t, key, result: _same_except(t.slots, result[1].slots, key)
    and (result[0] == 0 or result[1].slots == t.slots),
    "no other slot changes; on EEXIST or ENOMEM none does",
)
def radix_insert(t: Radix, key: int, item: int, grow_ok: bool = True) -> tuple[int, Radix]:
    """radix_insert: (0, EEXIST or ENOMEM, new tree).  Grows the tree to one leaf
    first; ``grow_ok`` False means allocating that root node fails (-ENOMEM, the
    tree unchanged), the only allocation failure radix_insert returns."""
    if t.depth == 0 and not grow_ok:
        return ENOMEM, t
    grown = Radix(1, t.slots)
    if grown.slots[key] != 0:
        return EEXIST, grown
    slots = list(grown.slots)
    slots[key] = item
    return 0, Radix(1, tuple(slots))


@icontract.require(lambda t: radix_ok(t))
@icontract.require(lambda t, key: 0 <= key < len(t.slots))
@icontract.ensure(lambda t, key, result: result[0] == t.slots[key])
@icontract.ensure(lambda key, result: result[1].slots[key] == 0)
@icontract.ensure(lambda t, result: result[1].depth == t.depth)
@icontract.ensure(lambda t, key, result: _same_except(t.slots, result[1].slots, key),
                  "no other slot changes")
def radix_delete(t: Radix, key: int) -> tuple[int, Radix]:
    """radix_delete: (old word, new tree).  The root leaf is never freed."""
    old = t.slots[key]
    slots = list(t.slots)
    slots[key] = 0
    return old, Radix(t.depth, tuple(slots))

"""A saved trace as a regression test, in one line of a pytest file:

    from pagemap.testing import replay_test

    test_f2_still_found = replay_test("traces/f2.json")                      # still violates
    test_f2_fixed = replay_test("traces/f2.json", variant="fixed", violates=False)

Not a model of any C function.  The path is relative to the calling test
file.  With ``violates=True`` (the default) the test fails unless the replay
breaks the invariant the trace was saved with; with ``violates=False`` it
fails if the replay breaks any invariant (a schedule that stops applying
under the variant, or completes, passes).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from pagemap.checker.replay import replay
from pagemap.checker.schedule import load_saved


def check_replay(path: str | Path, variant: str | None = None, violates: bool = True) -> None:
    """Replay ``path``; raise AssertionError when the outcome is not the one expected."""
    saved = load_saved(path)
    _, rep = replay(saved, variant)
    under = variant or saved.variant
    if violates:
        assert rep.verdict == "violation" and rep.invariant == saved.invariant, (
            f"{path} under {under}: expected {saved.invariant}, got {rep.verdict}"
            + (f" ({rep.invariant}: {rep.message})" if rep.invariant else "")
            + (f"; stopped at step {rep.steps + 1}: {rep.stopped}" if rep.stopped else ""))
    else:
        assert rep.verdict != "violation", (
            f"{path} under {under}: {rep.invariant}: {rep.message} at step {rep.steps}")


def replay_test(path: str | Path, variant: str | None = None, violates: bool = True
                ) -> Callable[[], None]:
    """A pytest test function that replays the saved trace ``path``."""
    caller = Path(inspect.stack()[1].filename).parent
    full = Path(path) if Path(path).is_absolute() else caller / path

    def test() -> None:
        check_replay(full, variant, violates)

    test.__doc__ = f"replay {path}" + (f" under {variant}" if variant else "")
    return test

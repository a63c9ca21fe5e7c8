"""Z3 proofs of pm_remove_contig's invariants for any number of threads.

* ``state`` -- the symbolic state: one slot, its page P, one PTE X, one TLB entry E,
  counters for everything else.
* ``system`` and ``steps_pm``, ``steps_mmu``, ``steps_remover`` -- the steps, built
  with ``pagemap.slot``'s generic core over ``pagemap.word.Z3Word``, per fix set.
* ``invariants`` -- the claims, the lemmas and the bookkeeping that make them inductive.
* ``theorems`` -- ``run(word_bits=None)``: proved on fixed; on seed and
  fixed-without-FIX the counterexamples of ``findings``.
* ``abstraction``, ``evaluate``, ``refinement`` -- the check that the steps mean what
  the executable model does (tests/test_refinement.py).

spec/removal/ explains all of it phase by phase.
"""

from proofs.removal.theorems import run

__all__ = ["run"]

"""Machine proofs about the 2014 page-map code (spec/slot.md, spec/removal/).

Each proof module exposes ``run(word_bits=None) -> list[CheckResult]``;
``python -m proofs`` runs every module listed in ``proofs.__main__``.

* ``proofs.z3kit`` -- the theorem framework: satisfiable assumptions, the
  claim, and a negative twin that must fail.
* ``proofs.encoding`` -- lemmas and findings about the slot word
  (``pm_slot_*`` in kern/src/pagemap.c), proved over ``pagemap.slot``.
"""

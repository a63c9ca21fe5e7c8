"""`pagemap report`: the review document in build/report/ (spec, verdicts,
findings with swimlane diagrams of their traces, proof and scenario tables).

Modules: ``markdown`` (spec/*.md to HTML), ``swimlane`` (SVG of a trace),
``data`` (what the document shows), ``sections`` (its HTML), ``style`` (CSS),
``build`` (the command).
"""

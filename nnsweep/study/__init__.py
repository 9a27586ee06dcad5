"""Optuna side: the study storage, samplers and pruners, resume checks, fast status reads.

Modules: :mod:`.storage` (open/create/resume studies), :mod:`.samplers`, :mod:`.comparable`
(settings that make trials comparable), :mod:`.status` (trial counts by SQL). Independent of
:mod:`nnsweep.track`.
"""

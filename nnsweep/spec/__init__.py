"""The sweep file: what a sweep asks for, checked before anything runs (layer 1, above the ground).

Modules: :mod:`.config` (``SweepSpec`` and its sections, ``load_spec``/``parse_spec``),
:mod:`.space` (search-space dimensions), :mod:`.dataset` (the ``dataset`` section's fields),
:mod:`.limits` (bounds on sizes and grids, functions over dimensions), :mod:`._yaml` (bounded
YAML). Imports only the ground (errors, names, tasks).
"""

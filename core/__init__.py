"""Helpers every package of the suite shares; imports nothing from the project.

``builders``, ``models`` and ``benchmark`` depend on this package and never on each other's
internals the wrong way round (``models`` and ``builders`` never import ``benchmark``):

- :mod:`core.resize`: PIL and MATLAB bicubic for arrays and tensors, ``mod_crop``;
- :mod:`core.paths`: the data, weights and cache folders (``$REFSR_DATA``, ``$REFSR_WEIGHTS``);
- :mod:`core.seeding`: generators seeded from a hash of keys (stable across machines and orders);
- :mod:`core.provenance`: package versions and the git commit recorded with every output;
- :mod:`core.files`: atomic writes and link-or-copy;
- :mod:`core.registry`: the one registry used for models, metrics, variants, importers and recipes.
"""

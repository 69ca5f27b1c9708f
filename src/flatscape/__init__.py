"""Reference pipeline for loss-landscape research (thesis Chapters 2-4).

Subpackages by layer; a layer imports only the layers above it in this list:

- ``pipeline``: workflow plumbing (config and its schema, job settings, I/O, logging
  and devices, GPU claims, result names, the check for the ``[pipeline]`` extra). No
  networks, no experiments.
- ``core``: the reusable library: ``flatness`` (Chapter 3's scale-invariant measure,
  as an operator), ``models`` (every network, one registry), ``train`` (one training
  path), ``datasets``, ``encoders`` (partial observation, coded exposure).
- ``ch2``, ``ch3``, ``ch4.partial``, ``ch4.detection``: one experiment each, built on
  ``core``; chapters never import one another.

docs/architecture.md maps every thesis table and figure to its rule, script and function.

``pip install flatscape`` (torch, numpy, scipy, tqdm) is enough for ``core`` and
``flatness``, and for the ``pipeline`` modules they use (io, naming, gpus, runtime, extras); the
rest, and the chapters, need ``pip install 'flatscape[pipeline]'``.
"""

__version__ = "0.2.0"

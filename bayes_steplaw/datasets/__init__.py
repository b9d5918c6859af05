"""Sweep data: the dataset registry (:mod:`.registry`), the sweep-table schema and loaders
(:mod:`.sweeps`: the released sweeps, users' tables, and other labs' tables that ship with the
package, :func:`.sweeps.load_external`) and simulated sweeps with a known law
(:mod:`.simulate`).

Nothing is imported here, so that the paper mode (``bootstrap``) can read the registry without
pandas; the public names are re-exported by :mod:`bayes_steplaw`.
"""

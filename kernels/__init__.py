"""Compute kernels: each with a NumPy reference and a CuPy path, chosen at run time.

A leaf package: imports numpy (and cupy when present), never another Jevons package.
The kernels themselves arrive with the proof-of-compute work (issue: proof of compute).
"""

"""Isolation the operating system enforces: clean zygote, per-call children, persistent workers.

Modules here are imported by the zygote and worker processes *without* the rest of the package
(see ``launch.py``), so they import only the standard library, ``orjson`` and each other.
"""

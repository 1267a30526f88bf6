"""Builds the Cython twins in _speedups/ (see broker/_accel.py for how they are chosen).

FLEETGATE_NO_EXTENSIONS=1 at build time skips compilation (pure-Python install).
"""

import os

from setuptools import Extension, setup

MODULES = ["framing", "codec", "topic_tree", "connection"]


def extensions() -> list[Extension]:
    if os.environ.get("FLEETGATE_NO_EXTENSIONS") == "1":
        return []
    from Cython.Build import cythonize

    exts = [
        Extension(f"_speedups.{name}", [f"_speedups/{name}.pyx"], extra_compile_args=["-O2"])
        for name in MODULES
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )


setup(ext_modules=extensions())

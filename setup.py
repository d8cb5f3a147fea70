"""Builds recengine._C, the CPU kernels: C++17 + OpenMP over NumPy buffers, no libtorch.

Portable flags only (no -march=native): the wheel must run on any x86-64/aarch64 machine.
Hot loops that want wider vectors use GCC's runtime dispatch (target_clones) in the source.
Set RECENGINE_NATIVE=1 to add -march=native for a local, non-distributed build.
"""

import glob
import os
import sys

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("RECENGINE_BUILD_JOBS", default=0).install()

compile_args = ["-O3", "-fopenmp", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"]
link_args = ["-fopenmp"]
if os.environ.get("RECENGINE_NATIVE") == "1":
    compile_args.append("-march=native")
if sys.platform == "darwin":  # Apple clang needs libomp; keep the build working without it
    compile_args = [a for a in compile_args if a != "-fopenmp"] + ["-Xpreprocessor", "-fopenmp"]
    link_args = ["-lomp"]

sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))

setup(
    ext_modules=[
        Pybind11Extension(
            "recengine._C",
            sources,
            include_dirs=["csrc"],
            cxx_std=17,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    ],
    cmdclass={"build_ext": build_ext},
)

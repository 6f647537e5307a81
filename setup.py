"""Build the compiled engine. Package metadata lives in pyproject.toml.

LSTM_C_DEBUG_CYTHON=1 turns bounds checks and wraparound back on, for chasing
a memory bug; release builds run without them.
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("LSTM_C_DEBUG_CYTHON", "0") == "1"

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

# OpenMP runs the batch halves of the packed time loop on two cores (_lstm.pyx,
# "threads"). Where the compiler lacks it, prange runs its parts in turn.
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []

extensions = [
    Extension(
        "lstm_c._lstm",
        ["src/lstm_c/_lstm.pyx"],
        include_dirs=["src/lstm_c"],  # the C kernels
        depends=["src/lstm_c/_fpenv.h", "src/lstm_c/_gates.h", "src/lstm_c/_recurrent.h",
                 "src/lstm_c/_peephole.pxd",
                 "src/lstm_c/_recurrent_isa.h", "src/lstm_c/_recurrent_kernels.h"],
        # fp-contract=off: no fused multiply-adds chosen by the compiler, so the
        # AVX-512, AVX2 and baseline kernels, and inference and training, give
        # bit-identical results.
        extra_compile_args=(["-O3"] if not DEBUG else ["-O0", "-g"]) + ["-ffp-contract=off"]
        + OPENMP,
        extra_link_args=OPENMP,
        define_macros=[("LSTM_C_DEBUG", "1" if DEBUG else "0")],
    ),
]

# include_path: the .pxd helpers are cimported as lstm_c._blas, lstm_c._gates.
setup(ext_modules=cythonize(extensions, include_path=["src"], compiler_directives=DIRECTIVES))

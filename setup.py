"""Package list and compiled extensions.

The packages are voiplog's plus the top-level migrations/ as voiplog.migrations.
The compiled extensions (Cython) each have a pure-Python reference that runs
when they are missing: a machine without a C compiler still installs voiplog,
with a warning, and runs it in pure Python (`voiplog --version` says which).
VOIPLOG_NO_EXTENSIONS=1 at install time builds none.
"""

import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# The sources of each compiled module. Built without floating-point
# contraction: a fused multiply-add rounds once where Python rounds twice, and
# the compiled results must be the reference's bit for bit.
EXTENSIONS = {
    "voiplog._cpipeline": ["voiplog/_cpipeline.pyx"],
    "voiplog.rtp._cstream": ["voiplog/rtp/_cstream.pyx"],
    "voiplog.capture._cpcap": ["voiplog/capture/_cpcap.pyx"],
    "voiplog.capture._cring": ["voiplog/capture/_cring.pyx"],
    "voiplog.sip._cmessage": ["voiplog/sip/_cmessage.pyx"],
    "voiplog.sip._csdp": ["voiplog/sip/_csdp.pyx"],
    "voiplog.packet._chep": ["voiplog/packet/_chep.pyx"],
    "voiplog.packet._cmirror": ["voiplog/packet/_cmirror.pyx"],
}
_COMPILE_ARGS = ["-O2", "-ffp-contract=off"]


class _OptionalBuildExt(build_ext):
    """Builds the extensions it can; one that does not build leaves its module to the
    pure-Python reference, said on standard error."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers
            self._skipped(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skipped(exc, ext.name)

    @staticmethod
    def _skipped(exc, name="the compiled extensions"):
        print(
            f"warning: {name} not built ({exc}); voiplog runs that part in pure Python",
            file=sys.stderr,
        )


def _extensions():
    if os.environ.get("VOIPLOG_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("warning: Cython is not installed; voiplog runs in pure Python", file=sys.stderr)
        return []
    modules = [
        Extension(name, sources, extra_compile_args=_COMPILE_ARGS)
        for name, sources in EXTENSIONS.items()
    ]
    return cythonize(modules, language_level=3, quiet=True)


setup(
    packages=[
        *find_packages(include=["voiplog", "voiplog.*"]),
        "voiplog.migrations",
        "voiplog.migrations.versions",
    ],
    package_dir={"voiplog.migrations": "migrations"},
    ext_modules=_extensions(),
    cmdclass={"build_ext": _OptionalBuildExt},
)

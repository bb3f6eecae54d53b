"""Build hook for the optional C fast paths of audit verification:
queries/_fastchain.c (SQLite; linked to libsqlite3 and OpenSSL's libcrypto)
and queries/_fastchain_pg.c (PostgreSQL; linked to libpq and libcrypto).
Everything else about the package is in pyproject.toml.

``optional=True``: on a machine without a compiler, sqlite3.h, libpq-fe.h or
OpenSSL's headers the build of that extension fails quietly, the install goes
on, and ``lianxin audit verify`` uses its pure-Python verifier for that store
(same verdicts, slower); ``lianxin audit verify --json`` says which one ran
("verifier"). The two are separate modules so that a machine without libpq
still gets the SQLite one.
"""

import shutil
import subprocess

from setuptools import Extension, setup


def _pg_include_dirs() -> list[str]:
    """libpq-fe.h's directory: pg_config's answer, else Debian's place."""
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--includedir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            if out:
                return [out]
        except (OSError, subprocess.SubprocessError):
            pass
    return ["/usr/include/postgresql"]


setup(
    ext_modules=[
        Extension(
            "queries._fastchain",
            sources=["queries/_fastchain.c"],
            depends=["queries/_chain_rule.h"],
            libraries=["sqlite3", "crypto"],
            optional=True,
        ),
        Extension(
            "queries._fastchain_pg",
            sources=["queries/_fastchain_pg.c"],
            depends=["queries/_chain_rule.h"],
            include_dirs=_pg_include_dirs(),
            libraries=["pq", "crypto"],
            optional=True,
        ),
    ]
)

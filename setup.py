"""Build hook for the optional C fast path of audit verification
(queries/_fastchain.c, linked to libsqlite3 and OpenSSL's libcrypto).
Everything else about the package is in pyproject.toml.

``optional=True``: on a machine without a compiler, sqlite3.h or OpenSSL's
headers the build of this one extension fails quietly, the install goes on,
and ``lianxin audit verify`` uses its pure-Python verifier (same verdicts,
slower); ``lianxin audit verify --json`` says which one ran ("verifier").
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "queries._fastchain",
            sources=["queries/_fastchain.c"],
            libraries=["sqlite3", "crypto"],
            optional=True,
        )
    ]
)

"""The one compiled part: `service.auditlog._treehash`, bulk SHA-256 for `handover audit verify` over libcrypto.

Optional: where there is no C compiler or no OpenSSL headers, the install goes on without it and the verifier
uses the same functions in pure Python (service/auditlog/treehash.py), slower. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "service.auditlog._treehash",
            ["service/auditlog/_treehash.c"],
            libraries=["crypto"],
            optional=True,
        )
    ]
)

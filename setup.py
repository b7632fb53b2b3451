"""The one compiled piece of browserfleet: the gateway's hot path (src/browserfleet/cdp/_plain.c,
why it is C is said there). Everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "browserfleet.cdp._plain",
            ["src/browserfleet/cdp/_plain.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
        )
    ]
)

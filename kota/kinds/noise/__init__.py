"""The ``noise`` kind: see kind.yaml beside this file for its fields, units and ranges."""

from pathlib import Path

from kota.kinds._spec import KindSpec

SPEC = KindSpec.load(Path(__file__).parent)

"""Kemendagri region codes (kode wilayah) of the kecamatan: the table and its typed loader.

The codes are the Ministry of Home Affairs' (Kemendagri) administrative region codes
(``PP.KK.CC``: province, kabupaten/kota, kecamatan), not BPS's statistical codes, which number
the same places differently (BPS ``3171`` is Jakarta Selatan, Kemendagri ``31.71`` is Jakarta
Pusat). The registry derives each device's ``district_code`` from this table
(:mod:`kota.registry`) and CAP writes it as the area's ``<geocode>`` (:mod:`alerts.cap`), so data
from two systems can be joined on it. Sources, confidence and licence: README.md beside this file.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["CODES_FILE", "CODE_PATTERN", "CONFIDENCES", "KecamatanCode", "KecamatanCodeError",
           "KecamatanCodes", "default_codes", "load_kecamatan_codes"]

CODES_FILE = Path(__file__).with_name("kecamatan_codes.csv")
COLUMNS = ("city", "kecamatan", "code", "source", "confidence")
# secondary: copied from a public compilation of the Kepmendagri decree (the decree's own PDF was
# not read); unverified: no source found, the code is left empty.
CONFIDENCES = ("verified", "secondary", "unverified")
CODE_PATTERN = r"^\d{2}\.\d{2}\.\d{2}$"  # a kecamatan's code, e.g. 31.71.01
_CODE = re.compile(CODE_PATTERN)
_CITY = re.compile(r"^[a-z][a-z0-9_-]*$")


class KecamatanCodeError(ValueError):
    """A bad row in the codes file; the message names the file and line."""


@dataclass(frozen=True)
class KecamatanCode:
    city: str
    kecamatan: str
    code: str | None        # None: not established from a source (confidence "unverified")
    source: str
    confidence: str


class KecamatanCodes:
    """Lookup by (city, kecamatan name); names compare without case and surrounding spaces."""

    def __init__(self, rows: list[KecamatanCode]) -> None:
        self._rows = {(row.city, row.kecamatan.casefold()): row for row in rows}

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[KecamatanCode]:
        return list(self._rows.values())

    def get(self, city: str, kecamatan: str) -> KecamatanCode | None:
        return self._rows.get((city, kecamatan.strip().casefold()))

    def code(self, city: str, kecamatan: str) -> str | None:
        """The Kemendagri code, or None (unknown kecamatan, or no code established)."""
        row = self.get(city, kecamatan)
        return row.code if row is not None else None


def load_kecamatan_codes(path: Path = CODES_FILE) -> KecamatanCodes:
    """Read and check the codes file; a bad row raises :class:`KecamatanCodeError`
    ("<file>:<line>: <what is wrong>")."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise KecamatanCodeError(f"{path}: cannot read the kecamatan codes ({exc.strerror})") \
            from None
    rows: list[KecamatanCode] = []
    seen_names: dict[tuple[str, str], int] = {}
    seen_codes: dict[str, int] = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise KecamatanCodeError(f"{path}:1: missing column(s) {', '.join(missing)} "
                                     f"(expected {','.join(COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            city, name, code, source, confidence = (
                (row.get(column) or "").strip() for column in COLUMNS)
            if not _CITY.match(city):
                raise KecamatanCodeError(f"{where}: city {city!r} is not a city tag like "
                                         "'jakarta'")
            if not name:
                raise KecamatanCodeError(f"{where}: kecamatan is empty")
            if confidence not in CONFIDENCES:
                raise KecamatanCodeError(f"{where}: confidence {confidence!r} is not one of "
                                         f"{', '.join(CONFIDENCES)}")
            if code:
                if not _CODE.match(code):
                    raise KecamatanCodeError(f"{where}: code {code!r} is not a Kemendagri "
                                             "kecamatan code like 31.71.01")
                if confidence == "unverified":
                    raise KecamatanCodeError(f"{where}: code {code} is marked unverified; give "
                                             "its source and confidence, or leave it empty")
                if not source:
                    raise KecamatanCodeError(f"{where}: code {code} has no source")
                if code in seen_codes:
                    raise KecamatanCodeError(f"{where}: code {code} already given on line "
                                             f"{seen_codes[code]}")
                seen_codes[code] = line
            elif confidence != "unverified":
                raise KecamatanCodeError(f"{where}: no code for {name}, so its confidence must "
                                         f"be 'unverified', not {confidence!r}")
            key = (city, name.casefold())
            if key in seen_names:
                raise KecamatanCodeError(f"{where}: {name} ({city}) already on line "
                                         f"{seen_names[key]}")
            seen_names[key] = line
            rows.append(KecamatanCode(city, name, code or None, source, confidence))
    return KecamatanCodes(rows)


@lru_cache(maxsize=1)
def default_codes() -> KecamatanCodes:
    """The shipped table, read once."""
    return load_kecamatan_codes(CODES_FILE)

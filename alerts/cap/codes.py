"""Kemendagri codes of the kecamatan for CAP's ``<geocode>``: the table lives in the ground
package (:mod:`kota.regions`, where the registry reads it too); re-exported here for CAP."""

from __future__ import annotations

from kota.regions import (
    CODES_FILE,
    CONFIDENCES,
    KecamatanCode,
    KecamatanCodeError,
    KecamatanCodes,
    default_codes,
    load_kecamatan_codes,
)

__all__ = ["CODES_FILE", "CONFIDENCES", "KecamatanCode", "KecamatanCodeError", "KecamatanCodes",
           "default_codes", "load_kecamatan_codes"]

"""The Japanese era table (和暦), the one in the package: era digits, first days, era years.

Used for the birth-date code ``EYYYYMMDD`` of the signing certificate (era digit + Gregorian
date), and for the era-year ``YYMMDD`` birth date the visual AP's collation keys use. Meiji
counts from 1868-01-25 (Gregorian for 明治元年1月1日): the era was proclaimed later that year
but applied to the whole year, which is how era years are written.
"""

from __future__ import annotations

from datetime import date
from enum import IntEnum

__all__ = ["ERA_STARTS", "Era", "era_for_date", "era_year", "era_yymmdd"]


class Era(IntEnum):
    """Japanese era digit, as in the birth date code ``EYYYYMMDD`` (0: unknown)."""

    UNKNOWN = 0
    MEIJI = 1
    TAISHO = 2
    SHOWA = 3
    HEISEI = 4
    REIWA = 5


#: First day of each era (Gregorian), newest first.
ERA_STARTS: tuple[tuple[date, Era], ...] = (
    (date(2019, 5, 1), Era.REIWA),
    (date(1989, 1, 8), Era.HEISEI),
    (date(1926, 12, 25), Era.SHOWA),
    (date(1912, 7, 30), Era.TAISHO),
    (date(1868, 10, 23), Era.MEIJI),
)


def era_for_date(d: date) -> Era:
    """The era a Gregorian date falls in (``UNKNOWN`` before Meiji)."""
    return next((era for start, era in ERA_STARTS if d >= start), Era.UNKNOWN)


def era_year(d: date) -> tuple[Era, int]:
    """(era, year within the era); ``ValueError`` before Meiji."""
    for start, era in ERA_STARTS:
        if d >= start:
            return era, d.year - start.year + 1
    raise ValueError(f"date before the Meiji era: {d.isoformat()}")


def era_yymmdd(d: date) -> str:
    """Era year + month + day, 6 digits (1985-04-01 → ``600401``, Showa 60)."""
    _era, year = era_year(d)
    return f"{year:02d}{d:%m%d}"

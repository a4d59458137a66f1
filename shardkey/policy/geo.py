"""Geographic tests of the Key Access Policy, integer math identical to ``PolicyGeo.sol``.

Coordinates are micro-degrees (``int32``), radii and accuracies metres. Every function
here mirrors the contract bit for bit (see ``docs/ARCHITECTURE.md``, "Policy geometry"):
all intermediate values of the circle test are non-negative, so Python's floor division
and Solidity's truncating division agree.

Accuracy of the circle test (equirectangular distance with ``cos`` taken at the mean
latitude of point and centre, from Bhaskara I's approximation) against the great-circle
(haversine) distance on a sphere of radius 6 371 008.8 m, for centres at
``|lat| <= 70`` degrees, measured by ``tests/unit/policy/test_policy_geo.py``:

====================  ==========================  ============================
radius up to          distance overestimated by    distance underestimated by
====================  ==========================  ============================
10 km                 0.34 %                       0.16 %
100 km                0.35 %                       0.16 %
1000 km               1.55 %                       0.16 %
====================  ==========================  ============================

(At ``|lat| <= 45``: 0.08 % / 0.17 % at 1000 km.) An earlier version took ``cos`` at the
centre's latitude and was off by up to 11.6 % at 1000 km; the mean latitude fixed that
at no extra cost. Near the boundary a point may still be classified differently from a
float great-circle test; the contract is the reference, and this module agrees with it
exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

from shardkey.policy.errors import PolicyValueError

LAT_MAX_E6 = 90_000_000
LON_MAX_E6 = 180_000_000
METRES_PER_DEGREE = 111_195
"""Metres per degree of latitude (mean Earth radius 6 371 008.8 m times pi / 180)."""

_SCALE = 1_000_000
_BHASKARA_K = 32_400 * 10**12  # (180e6)^2: 180 degrees in micro-degrees, squared


def cos_e6(lat_e6: int) -> int:
    """Return ``cos(lat)`` scaled by 1e6, from Bhaskara I's approximation (degrees form).

    ``cosE6 = 1e6 * (32400e12 - 4*a*a) / (32400e12 + a*a)`` with ``a = |lat_e6|``.
    """
    a = abs(lat_e6)
    if a > LAT_MAX_E6:
        raise PolicyValueError("lat_e6", f"must be in [-{LAT_MAX_E6}, {LAT_MAX_E6}]")
    return _SCALE * (_BHASKARA_K - 4 * a * a) // (_BHASKARA_K + a * a)


def in_circle(lat_e6: int, lon_e6: int, accuracy_m: int, c_lat_e6: int, c_lon_e6: int, radius_m: int) -> bool:
    """Return whether the accuracy disc around (lat, lon) lies inside the circle.

    Mirrors ``PolicyGeo.inCircle``: ``accuracyM <= radiusM`` and
    ``xS*xS + yS*yS <= ((radiusM - accuracyM) * 1e6)^2`` where ``yS`` and ``xS`` are the
    north-south and east-west offsets in micrometres.
    """
    if accuracy_m > radius_m:
        return False
    if abs(lat_e6) > LAT_MAX_E6 or abs(lon_e6) > LON_MAX_E6:
        return False
    cos = cos_e6(abs(lat_e6 + c_lat_e6) // 2)  # cos at the mean latitude
    y_s = abs(lat_e6 - c_lat_e6) * METRES_PER_DEGREE
    x_s = abs(lon_e6 - c_lon_e6) * METRES_PER_DEGREE * cos // _SCALE
    limit = (radius_m - accuracy_m) * _SCALE
    return x_s * x_s + y_s * y_s <= limit * limit


def approx_distance_m(lat_e6: int, lon_e6: int, c_lat_e6: int, c_lon_e6: int) -> float:
    """Return the distance (metres) the circle test uses, as a float, for diagnostics."""
    cos = cos_e6(abs(lat_e6 + c_lat_e6) // 2)
    y_s = abs(lat_e6 - c_lat_e6) * METRES_PER_DEGREE
    x_s = abs(lon_e6 - c_lon_e6) * METRES_PER_DEGREE * cos // _SCALE
    return math.sqrt(x_s * x_s + y_s * y_s) / _SCALE


def in_polygon(lat_e6: int, lon_e6: int, lats_e6: Sequence[int], lons_e6: Sequence[int]) -> bool:
    """Return whether the point lies inside the polygon (integer ray casting, point only).

    Mirrors ``PolicyGeo.inPolygon`` with ``y = lat`` and ``x = lon``: for each edge
    ``(i, j = i - 1 cyclic)`` with ``(yi > py) != (yj > py)``, the edge is crossed when
    ``yj > yi ? lhs < rhs : lhs > rhs`` with ``lhs = (px - xi) * (yj - yi)`` and
    ``rhs = (xj - xi) * (py - yi)``; inside iff an odd number of edges are crossed.
    Points on the boundary follow the half-open convention of this rule (for an
    axis-aligned square: the west and south edges are inside, the east and north
    edges outside).
    """
    n = len(lats_e6)
    if n != len(lons_e6):
        raise PolicyValueError("polygon", "lats_e6 and lons_e6 differ in length")
    py, px = lat_e6, lon_e6
    inside = False
    for i in range(n):
        j = i - 1 if i > 0 else n - 1
        yi, xi, yj, xj = lats_e6[i], lons_e6[i], lats_e6[j], lons_e6[j]
        if (yi > py) != (yj > py):
            lhs = (px - xi) * (yj - yi)
            rhs = (xj - xi) * (py - yi)
            if (lhs < rhs) if yj > yi else (lhs > rhs):
                inside = not inside
    return inside


def degrees_to_e6(value: float | int, kind: Literal["lat", "lon"]) -> int:
    """Convert degrees to micro-degrees, rounding half away from zero, range-checked.

    The float's shortest decimal form is used (``48.8566`` gives ``48856600`` exactly).
    Raises :class:`PolicyValueError` (path ``kind``) for non-numbers, NaN, infinities
    and values outside ``[-90, 90]`` (lat) or ``[-180, 180]`` (lon).
    """
    limit = LAT_MAX_E6 if kind == "lat" else LON_MAX_E6
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyValueError(kind, f"must be a number of degrees, not {type(value).__name__}")
    try:
        micro = (Decimal(repr(value)) * _SCALE).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise PolicyValueError(kind, f"must be a finite number, not {value!r}") from None
    if not micro.is_finite():
        raise PolicyValueError(kind, f"must be a finite number, not {value!r}")
    result = int(micro)
    if not -limit <= result <= limit:
        raise PolicyValueError(kind, f"must be between -{limit // _SCALE} and {limit // _SCALE}")
    return result


def e6_to_degrees(value_e6: int) -> float:
    """Convert micro-degrees back to float degrees (``48856600`` gives ``48.8566``)."""
    return value_e6 / _SCALE

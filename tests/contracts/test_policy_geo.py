"""PolicyGeo against a Python transcription of docs/ARCHITECTURE.md (bit-for-bit)."""

import random

import pytest

from shardkey.policy.geo import METRES_PER_DEGREE as M_PER_DEG
from shardkey.policy.geo import cos_e6, in_circle


def inside_circle(c, lat, lon, acc):
    """The Python mirror the KOS and holders use (shardkey/policy/geo.py)."""
    return in_circle(lat, lon, acc, *c)


def inside_polygon(lats, lons, py, px):
    inside = False
    j = len(lats) - 1
    for i in range(len(lats)):
        yi, yj, xi, xj = lats[i], lats[j], lons[i], lons[j]
        if (yi > py) != (yj > py):
            lhs = (px - xi) * (yj - yi)
            rhs = (xj - xi) * (py - yi)
            if (lhs < rhs) if yj > yi else (lhs > rhs):
                inside = not inside
        j = i
    return inside


def test_cos(geo):
    assert geo.cosE6(0) == 1_000_000
    assert geo.cosE6(90_000_000) == 0 and geo.cosE6(-90_000_000) == 0
    for lat in (60_000_000, -45_123_456, 1, 89_999_999, 48_856_600):
        assert geo.cosE6(lat) == cos_e6(abs(lat))
    assert abs(geo.cosE6(60_000_000) - 500_000) < 2_000  # Bhaskara is close to cos


def test_circle_boundaries(geo):
    c = (0, 0, M_PER_DEG)  # radius = exactly one degree of latitude
    assert geo.insideCircle(c, 1_000_000, 0, 0)  # on the boundary: inside
    assert not geo.insideCircle(c, 1_000_001, 0, 0)
    assert not geo.insideCircle(c, 1_000_000, 0, 1)  # accuracy disc crosses the edge
    assert geo.insideCircle(c, -1_000_000, 0, 0)
    assert geo.insideCircle(c, 0, 1_000_000, 0)  # cos(0) = 1
    assert not geo.insideCircle(c, 0, -1_000_001, 0)
    assert geo.insideCircle(c, 0, 0, M_PER_DEG)  # accuracy == radius at the centre
    assert not geo.insideCircle(c, 0, 0, M_PER_DEG + 1)
    # at 60 degrees north a degree of longitude is about half as long
    c60 = (60_000_000, 10_000_000, 10_000)
    east = 10_000_000 + 2 * 10_000 * 10**6 // M_PER_DEG * 99 // 100
    assert geo.insideCircle(c60, 60_000_000, east, 0) == inside_circle(c60, 60_000_000, east, 0)
    assert geo.insideCircle(c60, 60_000_000, east, 0)


def test_circle_matches_reference(geo):
    rng = random.Random(7)
    for _ in range(40):
        c = (rng.randint(-90_000_000, 90_000_000), rng.randint(-180_000_000, 180_000_000),
             rng.randint(1, 50_000))
        lat = max(-90_000_000, min(90_000_000, c[0] + rng.randint(-600_000, 600_000)))
        lon = max(-180_000_000, min(180_000_000, c[1] + rng.randint(-900_000, 900_000)))
        acc = rng.choice([0, 1, 100, 5_000])
        assert geo.insideCircle(c, lat, lon, acc) == inside_circle(c, lat, lon, acc), (c, lat, lon)


SQUARE = ([0, 0, 10, 10], [0, 10, 10, 0])
CONCAVE = ([0, 0, 10, 10, 5, 5], [0, 10, 10, 7, 7, 0])  # an L-ish shape (y=lat, x=lon)
TRIANGLE = ([-5_000_000, 5_000_000, 0], [-5_000_000, -5_000_000, 5_000_000])


@pytest.mark.parametrize(
    ("poly", "pt", "expected"),
    [
        (SQUARE, (5, 5), True),
        (SQUARE, (11, 5), False),
        (SQUARE, (5, -1), False),
        (SQUARE, (-1, -1), False),
        (CONCAVE, (7, 8), True),
        (CONCAVE, (7, 3), False),  # in the notch
        (CONCAVE, (3, 3), True),
        (TRIANGLE, (0, 0), True),
        (TRIANGLE, (4_000_000, 4_000_000), False),
        (TRIANGLE, (-4_000_000, -4_000_000), True),
        (TRIANGLE, (-4_000_000, 0), False),
    ],
)
def test_polygon(geo, poly, pt, expected):
    assert inside_polygon(*poly, *pt) == expected
    assert geo.insidePolygon(poly, *pt) == expected


def test_polygon_matches_reference_on_edges(geo):
    # points on vertices and edges: only agreement with the reference matters
    for poly in (SQUARE, CONCAVE):
        for py in (0, 5, 7, 10):
            for px in (0, 5, 7, 10):
                assert geo.insidePolygon(poly, py, px) == inside_polygon(*poly, py, px), (py, px)

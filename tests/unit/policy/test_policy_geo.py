"""Circle and polygon tests: exact boundaries, and agreement with float references."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shardkey.policy import PolicyValueError, degrees_to_e6, e6_to_degrees, in_circle, in_polygon
from shardkey.policy.geo import METRES_PER_DEGREE, approx_distance_m, cos_e6

EARTH_R = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(math.sqrt(a))


def destination(lat: float, lon: float, bearing: float, d: float) -> tuple[float, float]:
    p1, l1, t = math.radians(lat), math.radians(lon), d / EARTH_R
    p2 = math.asin(math.sin(p1) * math.cos(t) + math.cos(p1) * math.sin(t) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(t) * math.cos(p1), math.cos(t) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), math.degrees(l2)


# --- circle: exact integer behaviour ---------------------------------------------


def test_cos_e6_known_values() -> None:
    assert cos_e6(0) == 1_000_000
    assert cos_e6(90_000_000) == 0 and cos_e6(-90_000_000) == 0
    assert cos_e6(60_000_000) == 1_000_000 * (32400 - 4 * 3600) // (32400 + 3600)
    assert cos_e6(-45_000_000) == cos_e6(45_000_000)
    for deg in range(0, 91):
        assert abs(cos_e6(deg * 1_000_000) / 1e6 - math.cos(math.radians(deg))) < 0.0017
    with pytest.raises(PolicyValueError):
        cos_e6(90_000_001)


def test_circle_boundary_is_inclusive() -> None:
    # 1 degree of latitude is exactly METRES_PER_DEGREE metres, so this point is on the circle.
    r = METRES_PER_DEGREE
    assert in_circle(11_000_000, 5_000_000, 0, 10_000_000, 5_000_000, r)
    assert in_circle(9_000_000, 5_000_000, 0, 10_000_000, 5_000_000, r)
    assert not in_circle(11_000_001, 5_000_000, 0, 10_000_000, 5_000_000, r)
    assert not in_circle(11_000_000, 5_000_000, 0, 10_000_000, 5_000_000, r - 1)
    # At the equator cos = 1 exactly, so the east-west boundary is exact too.
    assert in_circle(0, 1_000_000, 0, 0, 0, r)
    assert not in_circle(0, 1_000_001, 0, 0, 0, r)
    assert not in_circle(0, -1_000_001, 0, 0, 0, r)


def test_circle_accuracy_disc() -> None:
    r = METRES_PER_DEGREE
    assert in_circle(10_500_000, 0, r // 2, 10_000_000, 0, r)  # 55597.5 m + 55597 m <= r
    assert not in_circle(10_500_000, 0, r // 2 + 1, 10_000_000, 0, r)
    assert in_circle(10_000_000, 0, r, 10_000_000, 0, r)  # accuracy == radius: centre only
    assert not in_circle(10_000_001, 0, r, 10_000_000, 0, r)
    assert not in_circle(10_000_000, 0, r + 1, 10_000_000, 0, r)  # accuracy > radius


def test_circle_east_west_uses_mean_latitude_cosine() -> None:
    c = cos_e6(60_000_000)
    # dLon such that xS = dLon * 111195 * c // 1e6 is just <= 1000e6 (1000 m).
    d_lon = 1000 * 10**6 * 10**6 // (METRES_PER_DEGREE * c)
    while (d_lon + 1) * METRES_PER_DEGREE * c // 10**6 <= 1000 * 10**6:
        d_lon += 1
    assert in_circle(60_000_000, d_lon, 0, 60_000_000, 0, 1000)
    assert not in_circle(60_000_000, d_lon + 1, 0, 60_000_000, 0, 1000)


def _relative_error(lat: float, lon: float, bearing: float, d: float) -> float:
    c_lat, c_lon = round(lat * 1e6), round(lon * 1e6)
    p_lat, p_lon = destination(c_lat / 1e6, c_lon / 1e6, bearing, d)
    q_lat, q_lon = round(p_lat * 1e6), round(p_lon * 1e6)
    h = haversine_m(c_lat / 1e6, c_lon / 1e6, q_lat / 1e6, q_lon / 1e6)
    return (approx_distance_m(q_lat, q_lon, c_lat, c_lon) - h) / h


# Measured bounds (see shardkey/policy/geo.py): (max radius, max |lat|) -> (over, under).
ERROR_BOUNDS = {
    (10_000, 70): (0.0036, 0.0018),
    (100_000, 70): (0.0037, 0.0018),
    (1_000_000, 70): (0.0165, 0.0018),
    (1_000_000, 45): (0.00085, 0.0019),
}


@pytest.mark.parametrize(("radius", "max_lat"), sorted(ERROR_BOUNDS))
def test_circle_max_error_against_haversine(radius: int, max_lat: int) -> None:
    over_bound, under_bound = ERROR_BOUNDS[(radius, max_lat)]
    over = under = 0.0
    for lat in (max_lat, -max_lat, max_lat * 0.5, 0.0):
        for tenth in range(0, 3600, 5):
            for d in (radius, radius * 0.5, radius * 0.1):
                e = _relative_error(lat, 10.0, math.radians(tenth / 10), d)
                over, under = max(over, e), min(under, e)
    assert over <= over_bound and -under <= under_bound
    # The bounds are tight: within 15 % of the measured worst case.
    assert over > over_bound * 0.85


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(-70, 70),
    lon=st.floats(-170, 170),
    radius=st.integers(1_000, 100_000),
    bearing=st.floats(0, 2 * math.pi),
    fraction=st.one_of(st.floats(0.0, 0.99), st.floats(1.01, 1.5)),
    accuracy_fraction=st.floats(0, 0.5),
)
def test_circle_agrees_with_haversine_one_percent_away(
    lat: float, lon: float, radius: int, bearing: float, fraction: float, accuracy_fraction: float
) -> None:
    """Radii up to 100 km: every point 1 % (plus accuracy) inside / outside agrees."""
    accuracy = int(radius * accuracy_fraction)
    c_lat, c_lon = round(lat * 1e6), round(lon * 1e6)
    p_lat, p_lon = destination(c_lat / 1e6, c_lon / 1e6, bearing, fraction * (radius - accuracy))
    q_lat, q_lon = round(p_lat * 1e6), round(p_lon * 1e6)
    h = haversine_m(c_lat / 1e6, c_lon / 1e6, q_lat / 1e6, q_lon / 1e6)
    limit = radius - accuracy
    assume(h + 0.5 <= limit * 0.99 or h - 0.5 >= limit * 1.0115)  # 0.5 m: rounding to 1e-6 deg
    assert in_circle(q_lat, q_lon, accuracy, c_lat, c_lon, radius) is (h < limit)


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-70, 70),
    lon=st.floats(-150, 150),
    radius=st.integers(100_000, 1_000_000),
    bearing=st.floats(0, 2 * math.pi),
    fraction=st.one_of(st.floats(0.0, 0.88), st.floats(1.07, 1.5)),
)
def test_circle_agrees_with_haversine_large_radii(
    lat: float, lon: float, radius: int, bearing: float, fraction: float
) -> None:
    """Radii up to 1000 km: agreement beyond the documented error (-11.6 % / +6.4 %)."""
    c_lat, c_lon = round(lat * 1e6), round(lon * 1e6)
    p_lat, p_lon = destination(c_lat / 1e6, c_lon / 1e6, bearing, fraction * radius)
    q_lat, q_lon = round(p_lat * 1e6), round(p_lon * 1e6)
    h = haversine_m(c_lat / 1e6, c_lon / 1e6, q_lat / 1e6, q_lon / 1e6)
    assert in_circle(q_lat, q_lon, 0, c_lat, c_lon, radius) is (h < radius)


# --- polygon --------------------------------------------------------------------

SQUARE = ((0, 0, 10, 10), (0, 10, 10, 0))  # lats, lons: (0,0) (0,10) (10,10) (10,0)
# A concave "U" (lat, lon): opening to the north between lon 3 and 7 above lat 3.
U_LATS = (0, 0, 10, 10, 3, 3, 10, 10)
U_LONS = (0, 10, 10, 7, 7, 3, 3, 0)


def ray_cast_float(py: float, px: float, lats: tuple[int, ...], lons: tuple[int, ...]) -> bool:
    inside = False
    n = len(lats)
    for i in range(n):
        j = i - 1
        yi, xi, yj, xj = lats[i], lons[i], lats[j], lons[j]
        if (yi > py) != (yj > py) and px < xi + (py - yi) * (xj - xi) / (yj - yi):
            inside = not inside
    return inside


def edge_distance(py: float, px: float, lats: tuple[int, ...], lons: tuple[int, ...]) -> float:
    best = math.inf
    for i in range(len(lats)):
        ay, ax, by, bx = lats[i - 1], lons[i - 1], lats[i], lons[i]
        dy, dx = by - ay, bx - ax
        t = 0.0 if dy == dx == 0 else ((py - ay) * dy + (px - ax) * dx) / (dy * dy + dx * dx)
        t = min(1.0, max(0.0, t))
        best = min(best, math.hypot(py - (ay + t * dy), px - (ax + t * dx)))
    return best


def test_polygon_convex_interior_and_exterior() -> None:
    lats, lons = SQUARE
    assert in_polygon(5, 5, lats, lons)
    assert not in_polygon(11, 5, lats, lons) and not in_polygon(5, -1, lats, lons)
    assert not in_polygon(-1, -1, lats, lons)


def test_polygon_boundary_convention() -> None:
    lats, lons = SQUARE
    assert in_polygon(5, 0, lats, lons)  # west edge: inside
    assert not in_polygon(5, 10, lats, lons)  # east edge: outside
    assert in_polygon(0, 5, lats, lons)  # south edge: inside
    assert not in_polygon(10, 5, lats, lons)  # north edge: outside
    assert in_polygon(0, 0, lats, lons)  # south-west vertex
    assert not in_polygon(0, 10, lats, lons)
    assert not in_polygon(10, 10, lats, lons) and not in_polygon(10, 0, lats, lons)
    # Vertex order (clockwise or not) does not change the answer.
    rl, ro = tuple(reversed(lats)), tuple(reversed(lons))
    for p in ((5, 0), (5, 10), (0, 5), (10, 5), (0, 0), (5, 5)):
        assert in_polygon(*p, rl, ro) == in_polygon(*p, lats, lons)


def test_polygon_concave() -> None:
    assert in_polygon(1, 5, U_LATS, U_LONS)  # the base of the U
    assert in_polygon(5, 1, U_LATS, U_LONS) and in_polygon(5, 9, U_LATS, U_LONS)  # arms
    assert not in_polygon(5, 5, U_LATS, U_LONS)  # the notch
    assert not in_polygon(9, 5, U_LATS, U_LONS)
    assert in_polygon(3, 5, U_LATS, U_LONS) is False  # notch floor is a north edge
    # A ray from inside the west arm crosses both arms' edges: still inside.
    assert in_polygon(7, 2, U_LATS, U_LONS)


def test_polygon_ray_through_vertex_counts_once() -> None:
    # Diamond: the eastward ray from the centre passes exactly through the east vertex.
    lats, lons = (0, 10, 20, 10), (10, 20, 10, 0)
    assert in_polygon(10, 10, lats, lons)
    assert not in_polygon(10, 21, lats, lons) and not in_polygon(10, -1, lats, lons)


def test_polygon_large_coordinates() -> None:
    lats = (-90_000_000, 90_000_000, 90_000_000, -90_000_000)
    lons = (-180_000_000, -180_000_000, 180_000_000, 180_000_000)
    assert in_polygon(0, 0, lats, lons) and in_polygon(-89_999_999, 179_999_999, lats, lons)


@st.composite
def polygons(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = draw(st.integers(3, 12))
    coord = st.integers(-1_000, 1_000)
    lats = tuple(draw(coord) for _ in range(n))
    lons = tuple(draw(coord) for _ in range(n))
    return lats, lons


@settings(max_examples=400, deadline=None)
@given(polygons(), st.integers(-1_100, 1_100), st.integers(-1_100, 1_100), st.integers(0, 1))
def test_polygon_agrees_with_float_ray_cast(
    poly: tuple[tuple[int, ...], tuple[int, ...]], py: int, px: int, scale_up: int
) -> None:
    lats, lons = poly
    if scale_up:  # the same shape at full coordinate range (products beyond 2^53)
        lats = tuple(v * 90_000 for v in lats)
        lons = tuple(v * 180_000 for v in lons)
        py, px = py * 81_000, px * 163_000
    assume(edge_distance(py, px, lats, lons) > 1e-3)
    assert in_polygon(py, px, lats, lons) is ray_cast_float(py, px, lats, lons)


def test_polygon_random_star_shapes() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(4, 32)  # angular gaps < pi: the origin is strictly inside
        angles = [2 * math.pi * (i + 0.9 * rng.random()) / n for i in range(n)]
        radii = [rng.uniform(1e5, 1e7) for _ in range(n)]
        lats = tuple(round(r * math.sin(a)) for r, a in zip(radii, angles, strict=True))
        lons = tuple(round(r * math.cos(a)) for r, a in zip(radii, angles, strict=True))
        assert in_polygon(0, 0, lats, lons)
        far = 2 * max(radii)
        assert not in_polygon(round(far), 0, lats, lons)


# --- degrees <-> micro-degrees ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (48.8566, "lat", 48_856_600),
        (2.3522, "lon", 2_352_200),
        (-33.8688, "lat", -33_868_800),
        (0.0000005, "lat", 1),  # half rounds away from zero
        (-0.0000005, "lat", -1),
        (0.0000004999, "lat", 0),
        (1.0000015, "lon", 1_000_002),
        (-1.0000025, "lon", -1_000_003),
        (90, "lat", 90_000_000),
        (-180, "lon", -180_000_000),
        (180.0, "lon", 180_000_000),
    ],
)
def test_degrees_to_e6(value: float, kind: str, expected: int) -> None:
    assert degrees_to_e6(value, kind) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (90.0000005, "lat"),
        (-91, "lat"),
        (180.000001, "lon"),
        (math.nan, "lat"),
        (math.inf, "lon"),
        (True, "lat"),
        ("1.5", "lat"),
        (None, "lon"),
    ],
)
def test_degrees_to_e6_rejects(value: object, kind: str) -> None:
    with pytest.raises(PolicyValueError, match=f"^{kind}: "):
        degrees_to_e6(value, kind)  # type: ignore[arg-type]


@given(st.integers(-180_000_000, 180_000_000))
def test_micro_degrees_round_trip(v: int) -> None:
    assert degrees_to_e6(e6_to_degrees(v), "lon") == v

"""Distinct regions for devnet holders (label, latitude, longitude)."""

from __future__ import annotations

REGIONS: tuple[tuple[str, float, float], ...] = (
    ("eu-west-paris", 48.8566, 2.3522),
    ("eu-central-frankfurt", 50.1109, 8.6821),
    ("us-east-virginia", 38.9072, -77.0369),
    ("us-west-oregon", 45.5152, -122.6784),
    ("ap-south-mumbai", 19.0760, 72.8777),
    ("ap-northeast-tokyo", 35.6762, 139.6503),
    ("sa-east-saopaulo", -23.5505, -46.6333),
    ("af-south-capetown", -33.9249, 18.4241),
    ("ap-southeast-sydney", -33.8688, 151.2093),
    ("ca-central-montreal", 45.5019, -73.5674),
)


def region_for(index: int) -> tuple[str, float, float]:
    """Region of the ``index``-th holder (0-based); labels stay distinct past ten."""
    label, lat, lon = REGIONS[index % len(REGIONS)]
    round_ = index // len(REGIONS)
    return (f"{label}-{round_ + 1}" if round_ else label, lat, lon)

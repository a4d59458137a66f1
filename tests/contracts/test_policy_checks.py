"""Every on-chain denial reason, the order of checks, and attestation replay."""

import pytest
from contract_helpers import DAY, REASONS, REQ_APPROVED, REQ_DENIED, ZERO, policy

PARIS = (48_856_600, 2_352_200)
NOON = 12 * 3600


def _decide(kit, ds, pol, *, at=None, sender=None, att=None):
    """Install `pol`, make a request (mined at `at`), return (status, reason)."""
    kit.dataset_registry.updatePolicy(ds, pol, sender=kit.owner)
    if at is not None:
        kit.at(at)
    kwargs = {}
    if att is not None:
        kwargs = {"att": att[0], "attestor": att[1], "sig": att[2]}
    rid, tx = kit.request(ds, sender=sender, **kwargs)
    status, reason = kit.status(rid)
    if status == REQ_DENIED:
        assert tx.events[-1] == kit.coordinator.RetrievalDenied(rid, ds, reason, ZERO)
    return status, reason


def denied(reason):
    return (REQ_DENIED, REASONS[reason])


OK = (REQ_APPROVED, 0)


def test_dataset_status_reasons(kit, outsider):
    pending = kit.register(confirm=False)
    assert kit.coordinator.checkPolicy(pending, kit.requester, (ZERO, 0, 0, 0, 0, b"\0" * 32),
                                       ZERO, b"") == REASONS["DatasetNotActive"]
    rid, _ = kit.request(pending)
    assert kit.status(rid) == denied("DatasetNotActive")
    revoked = kit.register(policy(requesters=[str(kit.requester)]))
    kit.dataset_registry.revokeDataset(revoked, sender=kit.owner)
    rid, _ = kit.request(revoked, sender=outsider)  # status is checked before the requester
    assert kit.status(rid) == denied("DatasetRevoked")


def test_requester_list(kit, ds, outsider, requester):
    pol = policy(requesters=[str(outsider)])
    assert _decide(kit, ds, pol) == denied("NotAllowedRequester")
    assert _decide(kit, ds, pol, sender=outsider) == OK
    assert _decide(kit, ds, policy(requesters=[str(outsider), str(requester)])) == OK


def test_validity_period(kit, ds):
    t = kit.day_start() + NOON
    assert _decide(kit, ds, policy(notBefore=t + 1), at=t) == denied("TooEarly")
    t += 10
    assert _decide(kit, ds, policy(notBefore=t), at=t) == OK
    t += 10
    assert _decide(kit, ds, policy(notAfter=t - 1), at=t) == denied("TooLate")
    t += 10
    assert _decide(kit, ds, policy(notBefore=t, notAfter=t), at=t) == OK


def _weekday(ts):
    return ((ts // DAY) + 3) % 7


def test_weekdays(kit, ds, geo):
    t = kit.day_start() + NOON
    w = _weekday(t)
    assert geo.weekday(t) == w and geo.weekday(0) == 3  # 1970-01-01 was a Thursday
    assert _decide(kit, ds, policy(weekdayMask=127 ^ (1 << w)), at=t) == denied("OutsideWeekdays")
    assert _decide(kit, ds, policy(weekdayMask=1 << w), at=t + 10) == OK


@pytest.mark.parametrize(
    ("offset", "start", "end", "allowed"),
    [
        (NOON, 721, 800, False),
        (NOON, 600, 720, False),  # end is exclusive
        (NOON, 720, 721, True),  # start is inclusive
        (NOON, 1380, 60, False),  # wraps midnight
        (23 * 3600 + 1800, 1380, 60, True),
        (1800, 1380, 60, True),
        (3600, 1380, 60, False),
    ],
)
def test_daily_window(kit, ds, geo, offset, start, end, allowed):
    t = kit.day_start() + offset
    assert geo.inDailyWindow(t, start, end) == allowed
    expected = OK if allowed else denied("OutsideDailyWindow")
    assert _decide(kit, ds, policy(dailyStartMinute=start, dailyEndMinute=end), at=t) == expected


def test_time_check_order(kit, ds, outsider):
    t = kit.day_start() + NOON
    w = _weekday(t)
    other_day = 127 ^ (1 << w)
    # requester (1) before notBefore (2)
    pol = policy(requesters=[str(outsider)], notBefore=t + 100)
    assert _decide(kit, ds, pol, at=t) == denied("NotAllowedRequester")
    # notAfter (3) before weekday (5)
    t += 10
    assert _decide(kit, ds, policy(notAfter=t - 1, weekdayMask=other_day), at=t) == denied("TooLate")
    # weekday (5) before daily window (4)
    t += 10
    pol = policy(weekdayMask=other_day, dailyStartMinute=0, dailyEndMinute=1)
    assert _decide(kit, ds, pol, at=t) == denied("OutsideWeekdays")


# ----- location attestation


def geo_policy(kit, **kw):
    base = {"attestors": [str(kit.attestor)], "maxAttestationAge": 300,
            "circles": [(PARIS[0], PARIS[1], 10_000)]}
    base.update(kw)
    return policy(**base)


def test_attestation_inside_region_is_consumed(kit, ds, coordinator):
    t = kit.day_start() + NOON
    att = kit.attest(*PARIS, 10, issued_at=t - 5)
    digest = coordinator.hashAttestation(att[0])
    kit.dataset_registry.updatePolicy(ds, geo_policy(kit), sender=kit.owner)
    kit.at(t)
    rid, tx = kit.request(ds, att=att[0], attestor=att[1], sig=att[2])
    assert kit.status(rid) == OK
    ev = tx.events[0]
    assert ev.attestor == kit.attestor.address
    assert ev.attestation[0].lower() == att[0][0].lower()
    assert list(ev.attestation[1:]) == list(att[0][1:])
    assert coordinator.attestationUsed(digest)
    # replay
    rid, _ = kit.request(ds, att=att[0], attestor=att[1], sig=att[2])
    assert kit.status(rid) == denied("AttestationReplayed")


def test_denied_request_does_not_consume_attestation(kit, ds, coordinator):
    t = kit.day_start() + NOON
    att = kit.attest(0, 0, 10, issued_at=t - 5)  # far from Paris
    assert _decide(kit, ds, geo_policy(kit), at=t, att=att) == denied("OutsideRegions")
    assert not coordinator.attestationUsed(coordinator.hashAttestation(att[0]))
    pol = geo_policy(kit, circles=[(0, 0, 100)])
    assert _decide(kit, ds, pol, at=t + 10, att=att) == OK


ATTESTATION_CASES = [
    # (name, attestation kwargs, request-side tweak, expected)
    ("missing", None, "none", "MissingAttestation"),
    ("empty sig", {}, "nosig", "MissingAttestation"),
    ("untrusted", {"signer": "outsider"}, "attestor=outsider", "UntrustedAttestor"),
    ("bad sig", {"signer": "outsider"}, "", "BadAttestationSignature"),
    ("other requester", {"requester": "outsider"}, "", "AttestationForOtherRequester"),
    ("future", {"issued": 1}, "", "AttestationFromFuture"),
    ("stale", {"issued": -301}, "", "StaleAttestation"),
    ("max age", {"issued": -300}, "", None),
    ("coarse", {"acc": 51}, "", "AttestationTooCoarse"),
    ("fine enough", {"acc": 50}, "", None),
    ("outside", {"lat": PARIS[0] + 100_000}, "", "OutsideRegions"),
    # 89_900 micro-degrees north = 9996.43 m from the centre of a 10 km circle
    ("disc crosses edge", {"lat": PARIS[0] + 89_900, "acc": 10}, "", "OutsideRegions"),
    ("disc inside", {"lat": PARIS[0] + 89_900, "acc": 3}, "", None),
    # order: other requester (9) before stale (10); stale before coarse; coarse before outside
    ("9 before 10", {"requester": "outsider", "issued": -1000}, "", "AttestationForOtherRequester"),
    ("10 before 19", {"issued": -1000, "acc": 500}, "", "StaleAttestation"),
    ("19 before 13", {"acc": 500, "lat": 0}, "", "AttestationTooCoarse"),
    ("7 before 8", {"signer": "requester"}, "attestor=outsider", "UntrustedAttestor"),
]


@pytest.mark.parametrize(("name", "akw", "tweak", "expected"), ATTESTATION_CASES,
                         ids=[c[0] for c in ATTESTATION_CASES])
def test_attestation_checks(kit, ds, coordinator, outsider, requester, name, akw, tweak, expected):
    who = {"outsider": outsider, "requester": requester}
    t = kit.day_start() + NOON
    pol = geo_policy(kit, maxAccuracyM=50)
    if akw is None:
        att = ((ZERO, 0, 0, 0, 0, b"\0" * 32), ZERO, b"")
    else:
        att = kit.attest(
            akw.get("lat", PARIS[0]), PARIS[1], akw.get("acc", 10),
            issued_at=t + akw.get("issued", -10),
            requester=who[akw["requester"]] if "requester" in akw else None,
            signer=who[akw["signer"]] if "signer" in akw else None,
        )
    if tweak == "nosig":
        att = (att[0], att[1], b"")
    elif tweak == "attestor=outsider":
        att = (att[0], outsider, att[2])
    kit.dataset_registry.updatePolicy(ds, pol, sender=kit.owner)
    kit.at(t)
    rid, _ = kit.request(ds, att=att[0], attestor=att[1], sig=att[2])
    assert kit.status(rid) == (denied(expected) if expected else OK)


def test_check_policy_previews(kit, ds, coordinator, outsider):
    kit.dataset_registry.updatePolicy(ds, geo_policy(kit), sender=kit.owner)
    good = kit.attest(*PARIS, 10, issued_at=kit.now)
    far = kit.attest(0, 0, 10, issued_at=kit.now, nonce=b"\2" * 32)

    def check(att, who=kit.requester):
        return coordinator.checkPolicy(ds, who, att[0], att[1], att[2])

    assert check(good) == 0
    assert check(far) == REASONS["OutsideRegions"]
    assert check(good, outsider) == REASONS["AttestationForOtherRequester"]
    rid, _ = kit.request(ds, att=good[0], attestor=good[1], sig=good[2])
    assert kit.status(rid) == OK
    assert check(good) == REASONS["AttestationReplayed"]


def test_polygon_region_and_contract_attestor(kit, ds, coordinator, wallet, approvers):
    """A polygon region, and an EIP-1271 wallet as attestor."""
    square = ([48_000_000, 48_000_000, 49_000_000, 49_000_000],
              [2_000_000, 3_000_000, 3_000_000, 2_000_000])
    pol = policy(attestors=[str(wallet.address)], maxAttestationAge=300, maxAccuracyM=10_000,
                 polygons=[square])
    kit.dataset_registry.updatePolicy(ds, pol, sender=kit.owner)
    t = kit.now
    inside = kit.attest(*PARIS, 10_000, issued_at=t, signer=approvers[2])
    outside = kit.attest(47_900_000, PARIS[1], 1, issued_at=t, signer=approvers[2])
    rid, _ = kit.request(ds, att=inside[0], attestor=wallet, sig=inside[2])
    assert kit.status(rid) == OK  # the polygon test ignores accuracy; maxAccuracyM bounds it
    coarse = kit.attest(*PARIS, 10_001, issued_at=t, signer=approvers[2], nonce=b"\x02" * 32)
    rid, _ = kit.request(ds, att=coarse[0], attestor=wallet, sig=coarse[2])
    assert kit.status(rid) == denied("AttestationTooCoarse")
    rid, _ = kit.request(ds, att=outside[0], attestor=wallet, sig=outside[2])
    assert kit.status(rid) == denied("OutsideRegions")

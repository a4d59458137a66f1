import pytest
from contract_helpers import (
    DS_ACTIVE,
    DS_PENDING,
    DS_REVOKED,
    ZERO32,
    params,
    policy,
    reverts,
    shard_hashes,
    view_reverts,
)
from eth_abi import encode
from eth_utils import keccak

SALT = keccak(b"s")


def _register(kit, prm=None, pol=None, hashes=None, wraps=None, roots=None, salt=SALT, sender=None):
    prm = prm or params(kit.shard_holders, kit.fragment_holders)
    n = len(prm[8])
    return kit.dataset_registry.registerDataset(
        salt, prm, pol or policy(),
        shard_hashes(prm[5]) if hashes is None else hashes,
        [b"w"] * n if wraps is None else wraps,
        [ZERO32] * n if roots is None else roots,
        sender=sender or kit.owner,
    )


def test_register_stores_and_emits(kit, dataset_registry, owner, chain):
    prm = params(kit.shard_holders, kit.fragment_holders)
    hashes = shard_hashes(10)
    wraps = [bytes([i]) * 3 for i in range(5)]
    roots = [keccak(bytes([i])) for i in range(5)]
    tx = _register(kit, prm, policy(approvalWindow=77), hashes, wraps, roots)
    ds_id = dataset_registry.computeDatasetId(owner, SALT)
    assert ds_id == keccak(encode(["uint256", "address", "address", "bytes32"],
                                  [chain.chain_id, dataset_registry.address, owner.address, SALT]))
    reg = tx.events.filter(dataset_registry.DatasetRegistered)[0]
    assert reg.datasetId == ds_id and reg.owner == owner.address and reg.salt == SALT
    assert list(reg.shardHashes) == hashes and list(reg.sealedWrapKeys) == wraps
    assert list(reg.fragmentRoots) == roots
    assert reg.params[0] == prm[0] and reg.params[5] == 10  # event structs decode as lists
    pu = tx.events.filter(dataset_registry.PolicyUpdated)[0]
    assert pu.datasetId == ds_id and pu.version == 1 and pu.policy[12] == 77

    d = dataset_registry.dataset(ds_id)
    assert d.owner == owner.address and d.merkleRoot == prm[0]
    assert (d.k, d.p, d.shardSize, d.plaintextLength, d.shardCount, d.threshold) == (
        3, 2, 1024, 6144, 10, 3)
    assert d.status == DS_PENDING and d.policyVersion == 1
    assert (d.confirmations, d.requiredConfirmations) == (0, 6)
    assert d.registeredAt == tx.timestamp
    assert d.shardHolders == [h.address for h in kit.shard_holders]
    assert d.fragmentHolders == [h.address for h in kit.fragment_holders]
    assert dataset_registry.datasetStatus(ds_id) == (DS_PENDING, 1)


def test_placement_and_membership_views(kit, dataset_registry, ds, outsider):
    sh, fh = kit.shard_holders, kit.fragment_holders
    for i in range(10):
        assert dataset_registry.shardHolderOf(ds, i) == sh[i % 5].address
    view_reverts(dataset_registry.shardHolderOf, (ds, 10), "DatasetShardIndexOutOfRange", ds, 10, 10)
    assert dataset_registry.isShardHolder(ds, sh[0]) and not dataset_registry.isShardHolder(ds, fh[4])
    assert dataset_registry.isFragmentHolder(ds, fh[4])
    assert not dataset_registry.isFragmentHolder(ds, sh[0])
    for j, h in enumerate(fh):
        assert dataset_registry.fragmentHolderIndex(ds, h) == j
    view_reverts(dataset_registry.fragmentHolderIndex, (ds, outsider),
                 "DatasetNotFragmentHolder", ds, outsider)
    view_reverts(dataset_registry.dataset, (ZERO32,), "DatasetUnknown", ZERO32)
    view_reverts(dataset_registry.shardHolderOf, (ZERO32, 0), "DatasetUnknown", ZERO32)
    assert dataset_registry.datasetStatus(ZERO32) == (0, 0)


def test_custody_confirmation_activates(kit, dataset_registry, outsider):
    ds_id = kit.register(confirm=False)
    holders = sorted({h.address for h in kit.shard_holders + kit.fragment_holders})
    with reverts("DatasetNotHolder", ds_id, outsider):
        dataset_registry.confirmCustody(ds_id, sender=outsider)
    for n, h in enumerate(holders, start=1):
        tx = dataset_registry.confirmCustody(ds_id, sender=h)
        assert tx.events[0] == dataset_registry.CustodyConfirmed(ds_id, h, n, 6)
        assert dataset_registry.custodyConfirmed(ds_id, h)
        if n < 6:
            assert len(tx.events) == 1
            with reverts("DatasetCustodyAlreadyConfirmed", ds_id, h):
                dataset_registry.confirmCustody(ds_id, sender=h)
        else:
            assert tx.events[1] == dataset_registry.DatasetActivated(ds_id)
    assert dataset_registry.datasetStatus(ds_id) == (DS_ACTIVE, 1)
    with reverts("DatasetInvalidStatus", ds_id, DS_ACTIVE):
        dataset_registry.confirmCustody(ds_id, sender=holders[0])
    with reverts("DatasetUnknown", ZERO32):
        dataset_registry.confirmCustody(ZERO32, sender=holders[0])


def test_retired_holder_still_confirms(kit, dataset_registry, holder_registry, admin):
    ds_id = kit.register(confirm=False)
    h = kit.shard_holders[0]
    holder_registry.retireHolder(h, sender=admin)
    dataset_registry.confirmCustody(ds_id, sender=h)
    assert dataset_registry.custodyConfirmed(ds_id, h)
    # ... but cannot be placed in a new dataset
    with reverts("DatasetHolderNotActive", h):
        _register(kit, salt=keccak(b"other"))


def test_register_reverts_on_bad_params(kit, holders, owner):
    sh, fh = kit.shard_holders, kit.fragment_holders
    _register(kit)
    ds_id = kit.dataset_registry.computeDatasetId(owner, SALT)
    with reverts("DatasetAlreadyRegistered", ds_id):
        _register(kit)
    s2 = keccak(b"2")
    cases = [
        (params(sh, fh, merkle_root=ZERO32), ("DatasetZeroMerkleRoot",)),
        (params(sh, fh, k=0, shard_count=10), ("DatasetInvalidCoding", 0, 2)),
        (params(sh, fh, k=200, p=57, stripes=1), ("DatasetInvalidCoding", 200, 57)),
        (params(sh, fh, shard_size=0, length=1, shard_count=5), ("DatasetZeroShardSize",)),
        (params(sh, fh, shard_count=15), ("DatasetShardCountMismatch", 10, 15, 15)),
        (params(sh, fh, length=6145, shard_count=10), ("DatasetShardCountMismatch", 15, 10, 10)),
        (params(sh[:4], fh), ("DatasetTooFewShardHolders", 4, 5)),
        (params([sh[0], sh[1], sh[2], sh[3], sh[0]], fh), ("DatasetDuplicateHolder", sh[0])),
        (params(sh, [fh[0], fh[0]], threshold=1), ("DatasetDuplicateHolder", fh[0])),
        (params(sh, fh, threshold=0), ("DatasetInvalidThreshold", 0, 5)),
        (params(sh, fh, threshold=6), ("DatasetInvalidThreshold", 6, 5)),
        (params(sh, [], threshold=1), ("DatasetInvalidThreshold", 1, 0)),
        (params([*sh[:4], holders[-1]], fh), ("DatasetHolderNotActive", holders[-1])),
        (params(sh, [*fh[:4], holders[-1]]), ("DatasetHolderNotActive", holders[-1])),
    ]
    for prm, err in cases:
        n = len(prm[8])
        with reverts(*err):
            _register(kit, prm, salt=s2, wraps=[b"w"] * n, roots=[ZERO32] * n)
    # hash array length differs from the declared count
    with reverts("DatasetShardCountMismatch", 10, 10, 9):
        _register(kit, salt=s2, hashes=shard_hashes(9))
    with reverts("DatasetFragmentLengthMismatch", 5, 4, 5):
        _register(kit, salt=s2, wraps=[b"w"] * 4)
    with reverts("DatasetFragmentLengthMismatch", 5, 5, 6):
        _register(kit, salt=s2, roots=[ZERO32] * 6)
    with reverts("DatasetEmptyWrapKey", 2):
        _register(kit, salt=s2, wraps=[b"w", b"w", b"", b"w", b"w"])


def test_register_caps(kit, holders):
    many = [f"0x{i:040x}" for i in range(1, 258)]
    prm = params(many, kit.fragment_holders)
    with reverts("DatasetTooManyHolders", 257, 256):
        _register(kit, prm)
    prm = params(kit.shard_holders, many[:256], threshold=1)
    with reverts("DatasetInvalidThreshold", 1, 256):
        _register(kit, prm, wraps=[b"w"] * 256, roots=[ZERO32] * 256)


def test_shard_count_rounding(kit):
    # empty file: one stripe; partial stripe rounds up
    for length, count in ((0, 5), (1, 5), (3072, 5), (3073, 10)):
        prm = params(kit.shard_holders, kit.fragment_holders, length=length, shard_count=count)
        _register(kit, prm, salt=keccak(length.to_bytes(8, "big")))


A = "0x00000000000000000000000000000000000000aa"
B = "0x00000000000000000000000000000000000000bb"
C = "0x00000000000000000000000000000000000000cc"
CIRCLE = (1_000_000, 2_000_000, 500)
SQUARE = ([0, 0, 1_000_000], [0, 1_000_000, 1_000_000])
GEO = {"attestors": [A], "maxAttestationAge": 60}

POLICY_ERRORS = [
    (dict(requesters=[A] * 65), ("PolicyListTooLong", "requesters", 65, 64)),
    (dict(attestors=[A] * 17, maxAttestationAge=1, circles=[CIRCLE]),
     ("PolicyListTooLong", "attestors", 17, 16)),
    (dict(GEO, circles=[CIRCLE] * 17), ("PolicyListTooLong", "regions", 17, 16)),
    (dict(groups=[("g", [A], 1)] * 9), ("PolicyListTooLong", "groups", 9, 8)),
    (dict(groups=[("g", [f"0x{i:040x}" for i in range(1, 34)], 1)]),
     ("PolicyListTooLong", "members", 33, 32)),
    (dict(GEO, maxAccuracyM=1, polygons=[([0, 0, 1] * 10, [0, 1, 1] * 10)] * 16),
     ("PolicyTooLarge", 33920, 8192)),  # len(encode([POLICY_ABI], [policy])), checked below
    (dict(notBefore=10, notAfter=9), ("PolicyInvalidPeriod", 10, 9)),
    (dict(dailyStartMinute=1440), ("PolicyInvalidDailyWindow", 1440, 0)),
    (dict(dailyEndMinute=1440), ("PolicyInvalidDailyWindow", 0, 1440)),
    (dict(weekdayMask=128), ("PolicyInvalidWeekdayMask", 128)),
    (dict(approvalWindow=0), ("PolicyZeroApprovalWindow",)),
    (dict(circles=[CIRCLE]), ("PolicyRegionsWithoutAttestors",)),
    (dict(attestors=[A], circles=[CIRCLE]), ("PolicyZeroAttestationAge",)),
    (dict(GEO), ("PolicyNoRegions",)),
    (dict(GEO, circles=[(90_000_001, 0, 1)]), ("PolicyCircleOutOfRange", 0, 90_000_001, 0)),
    (dict(GEO, circles=[CIRCLE, (0, -180_000_001, 1)]),
     ("PolicyCircleOutOfRange", 1, 0, -180_000_001)),
    (dict(GEO, circles=[(0, 0, 0)]), ("PolicyCircleZeroRadius", 0)),
    (dict(GEO, polygons=[([0, 1], [0, 1])]), ("PolicyPolygonInvalidVertexCount", 0, 2, 2)),
    (dict(GEO, polygons=[([0, 1, 2], [0, 1])]), ("PolicyPolygonInvalidVertexCount", 0, 3, 2)),
    (dict(GEO, polygons=[([0] * 33, [0] * 33)]), ("PolicyPolygonInvalidVertexCount", 0, 33, 33)),
    (dict(GEO, polygons=[SQUARE, ([0, 0, -90_000_001], [0, 1, 1])]),
     ("PolicyPolygonOutOfRange", 1, 2, -90_000_001, 1)),
    (dict(groups=[("g", [], 1)]), ("PolicyGroupEmpty", 0)),
    (dict(groups=[("g", [A], 1), ("h", [A, B, A], 1)]), ("PolicyGroupDuplicateMember", 1, A)),
    (dict(groups=[("g", [A, B], 0)]), ("PolicyGroupInvalidRequired", 0, 0, 2)),
    (dict(groups=[("g", [A, B], 3)]), ("PolicyGroupInvalidRequired", 0, 3, 2)),
    (dict(GEO, circles=[CIRCLE], polygons=[SQUARE]), ("PolicyPolygonsWithoutAccuracy",)),
    (dict(groups=[("g", [A], 1), ("h", [B], 1), ("i", [C, B], 1)]), ("PolicyMemberInTwoGroups", 1, 2, B)),
    (dict(groups=[("g", [A, B], 1), ("h", [C, A], 2)]), ("PolicyMemberInTwoGroups", 0, 1, A)),
]


POLICY_ABI = ("(address[],uint64,uint64,uint16,uint16,uint8,address[],uint32,uint32,"
              "(int32,int32,uint32)[],(int32[],int32[])[],(string,address[],uint8)[],uint32)")


def test_policy_too_large_size_is_abi_length():
    big = policy(**POLICY_ERRORS[5][0])
    assert len(encode([POLICY_ABI], [big])) == POLICY_ERRORS[5][1][1]


@pytest.mark.parametrize(("overrides", "err"), POLICY_ERRORS)
def test_policy_validation(kit, ds, overrides, err):
    with reverts(*err):
        kit.dataset_registry.updatePolicy(ds, policy(**overrides), sender=kit.owner)


def test_policy_bounds_accepted(kit, ds):
    members = [f"0x{i:040x}" for i in range(1, 89)]
    edges = [
        policy(requesters=[A] * 64, notBefore=5, notAfter=5, dailyStartMinute=1439,
               dailyEndMinute=0, weekdayMask=127, approvalWindow=1),
        policy(attestors=[A] * 16, maxAttestationAge=1, maxAccuracyM=1,
               circles=[(90_000_000, 180_000_000, 1)] * 15,
               polygons=[([-90_000_000, 0, 90_000_000], [-180_000_000, 0, 180_000_000])]),
        policy(groups=[(f"g{k}", members[8 * k:8 * k + 8], 8) for k in range(7)]
               + [("h", members[56:], 32)]),
    ]
    for pol in edges:
        kit.dataset_registry.updatePolicy(ds, pol, sender=kit.owner)
    # validation also runs on registration
    with reverts("PolicyZeroApprovalWindow"):
        _register(kit, pol=policy(approvalWindow=0))


def test_update_policy_versions(kit, dataset_registry, ds, outsider):
    p2 = policy(
        requesters=[A], attestors=[B], maxAttestationAge=30, maxAccuracyM=50,
        circles=[(-33_868_800, 151_209_300, 1000)], polygons=[SQUARE],
        groups=[("legal", [A, B], 2)], approvalWindow=600, weekdayMask=31,
        dailyStartMinute=540, dailyEndMinute=1020, notBefore=1, notAfter=2**40,
    )
    with reverts("DatasetUnauthorizedAccount", ds, outsider):
        dataset_registry.updatePolicy(ds, p2, sender=outsider)
    tx = dataset_registry.updatePolicy(ds, p2, sender=kit.owner)
    ev = tx.events.filter(dataset_registry.PolicyUpdated)[0]
    assert ev.version == 2 and ev.policy[11][0][0] == "legal"
    got = dataset_registry.policy(ds, 2)
    assert got.circles[0].latE6 == -33_868_800 and got.polygons[0].lonsE6 == [0, 1_000_000, 1_000_000]
    assert [m.lower() for m in got.groups[0].members] == [A, B] and got.groups[0].required == 2
    assert (got.notBefore, got.notAfter, got.weekdayMask, got.maxAccuracyM) == (1, 2**40, 31, 50)
    assert dataset_registry.currentPolicy(ds).approvalWindow == 600
    assert dataset_registry.policy(ds, 1).approvalWindow == 3600
    assert dataset_registry.dataset(ds).policyVersion == 2
    view_reverts(dataset_registry.policy, (ds, 3), "DatasetUnknownPolicyVersion", ds, 3)
    view_reverts(dataset_registry.policy, (ds, 0), "DatasetUnknownPolicyVersion", ds, 0)
    view_reverts(dataset_registry.policy, (ZERO32, 1), "DatasetUnknown", ZERO32)
    view_reverts(dataset_registry.currentPolicy, (ZERO32,), "DatasetUnknown", ZERO32)
    with reverts("DatasetUnknown", ZERO32):
        dataset_registry.updatePolicy(ZERO32, p2, sender=kit.owner)


def test_revoke(kit, dataset_registry, ds, outsider):
    with reverts("DatasetUnauthorizedAccount", ds, outsider):
        dataset_registry.revokeDataset(ds, sender=outsider)
    tx = dataset_registry.revokeDataset(ds, sender=kit.owner)
    assert tx.events == [dataset_registry.DatasetRevoked(ds, kit.owner)]
    assert dataset_registry.datasetStatus(ds)[0] == DS_REVOKED
    with reverts("DatasetInvalidStatus", ds, DS_REVOKED):
        dataset_registry.revokeDataset(ds, sender=kit.owner)
    with reverts("DatasetInvalidStatus", ds, DS_REVOKED):
        dataset_registry.updatePolicy(ds, policy(), sender=kit.owner)


def test_revoke_cancels_pending_registration(kit, dataset_registry):
    ds_id = kit.register(confirm=False)
    dataset_registry.revokeDataset(ds_id, sender=kit.owner)
    with reverts("DatasetInvalidStatus", ds_id, DS_REVOKED):
        dataset_registry.confirmCustody(ds_id, sender=kit.shard_holders[0])


def test_holder_registry_view(dataset_registry, holder_registry):
    assert dataset_registry.holderRegistry() == holder_registry.address
    assert dataset_registry.MAX_HOLDERS() == 256

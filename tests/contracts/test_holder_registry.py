from contract_helpers import H_ACTIVE, H_PENDING, H_RETIRED, reverts, view_reverts


def test_register_emits_and_stores(holder_registry, holders):
    h = holders[-1]
    tx = holder_registry.registerHolder(b"key", "http://x", "us", -33_000_000, 151_000_000, sender=h)
    ev = tx.events.filter(holder_registry.HolderRegistered)[0]
    assert (ev.holder, ev.hpkePublicKey, ev.endpoint, ev.region, ev.latE6, ev.lonE6) == (
        h.address, b"key", "http://x", "us", -33_000_000, 151_000_000)
    rec = holder_registry.getHolder(h)
    assert rec.status == H_PENDING and rec.hpkePublicKey == b"key" and rec.region == "us"
    assert rec.registeredAt == tx.timestamp
    assert not holder_registry.isActive(h)
    assert h.address in holder_registry.holders()


def test_register_reverts(holder_registry, holders, active_holders):
    h = holders[-1]
    with reverts("HolderAlreadyRegistered", active_holders[0]):
        holder_registry.registerHolder(b"k", "e", "r", 0, 0, sender=active_holders[0])
    with reverts("HolderEmptyPublicKey", h):
        holder_registry.registerHolder(b"", "e", "r", 0, 0, sender=h)
    with reverts("HolderEmptyEndpoint", h):
        holder_registry.registerHolder(b"k", "", "r", 0, 0, sender=h)
    with reverts("HolderCoordinatesOutOfRange", 90_000_001, 0):
        holder_registry.registerHolder(b"k", "e", "r", 90_000_001, 0, sender=h)
    with reverts("HolderCoordinatesOutOfRange", 0, -180_000_001):
        holder_registry.registerHolder(b"k", "e", "r", 0, -180_000_001, sender=h)


def test_activate_retire_lifecycle(holder_registry, holders, admin):
    h = holders[-1]
    holder_registry.registerHolder(b"k", "e", "r", 0, 0, sender=h)
    tx = holder_registry.activateHolder(h, sender=admin)
    assert tx.events == [holder_registry.HolderActivated(h, admin)]
    assert holder_registry.isActive(h)
    with reverts("HolderInvalidStatus", h, H_ACTIVE):
        holder_registry.activateHolder(h, sender=admin)
    tx = holder_registry.retireHolder(h, sender=admin)
    assert tx.events == [holder_registry.HolderRetired(h, admin)]
    assert holder_registry.getHolder(h).status == H_RETIRED
    with reverts("HolderInvalidStatus", h, H_RETIRED):
        holder_registry.retireHolder(h, sender=admin)
    holder_registry.activateHolder(h, sender=admin)  # re-activation allowed
    assert holder_registry.isActive(h)


def test_admin_only(holder_registry, holders, outsider):
    h = holders[-1]
    holder_registry.registerHolder(b"k", "e", "r", 0, 0, sender=h)
    for fn in (holder_registry.activateHolder, holder_registry.retireHolder):
        with reverts("AccessControlUnauthorizedAccount", outsider, b"\x00" * 32):
            fn(h, sender=outsider)


def test_unknown_holder(holder_registry, holders, admin):
    h = holders[-1]
    view_reverts(holder_registry.getHolder, (h,), "HolderNotRegistered", h)
    with reverts("HolderNotRegistered", h):
        holder_registry.activateHolder(h, sender=admin)
    with reverts("HolderNotRegistered", h):
        holder_registry.retireHolder(h, sender=admin)
    with reverts("HolderNotRegistered", h):
        holder_registry.updateHolder(b"k", "e", sender=h)


def test_update_holder(holder_registry, active_holders):
    h = active_holders[0]
    tx = holder_registry.updateHolder(b"new", "http://new", sender=h)
    assert tx.events == [holder_registry.HolderUpdated(h, b"new", "http://new")]
    rec = holder_registry.getHolder(h)
    assert (rec.hpkePublicKey, rec.endpoint, rec.status) == (b"new", "http://new", H_ACTIVE)
    with reverts("HolderEmptyPublicKey", h):
        holder_registry.updateHolder(b"", "e", sender=h)
    with reverts("HolderEmptyEndpoint", h):
        holder_registry.updateHolder(b"k", "", sender=h)


def test_holders_list(holder_registry, active_holders):
    assert holder_registry.holders() == [h.address for h in active_holders]


def test_admin_transitions_are_the_cli_table(holder_registry, holders, admin, accounts, chain):
    """Every admin transition from every status succeeds exactly when the CLI's table
    (shardkey.chain.model.ADMIN_HOLDER_TRANSITIONS) says so: the CLI never refuses what the
    chain allows, nor sends what it reverts."""
    from shardkey.chain.model import ADMIN_HOLDER_TRANSITIONS, HolderStatus

    h = holders[-1]
    holder_registry.registerHolder(b"k", "e", "r", 0, 0, sender=h)
    calls = {"activate": holder_registry.activateHolder, "retire": holder_registry.retireHolder,
             "fail": holder_registry.markFailed}

    def reach(status: HolderStatus) -> None:
        """Drive ``h`` from wherever it is to ``status`` (through Retired, then Active)."""
        current = HolderStatus(holder_registry.getHolder(h).status)
        if current == status:
            return
        if current != HolderStatus.RETIRED:
            holder_registry.retireHolder(h, sender=admin)
        if status == HolderStatus.RETIRED:
            return
        holder_registry.activateHolder(h, sender=admin)
        if status == HolderStatus.EXITING:
            holder_registry.announceExit(sender=h)
        elif status == HolderStatus.FAILED:
            holder_registry.markFailed(h, sender=admin)
        assert HolderStatus(holder_registry.getHolder(h).status) == status

    tried = 0
    for status in (HolderStatus.PENDING, HolderStatus.ACTIVE, HolderStatus.RETIRED, HolderStatus.EXITING,
                   HolderStatus.FAILED):
        for verb, call in calls.items():
            if status == HolderStatus.PENDING:
                continue  # Pending is left once; checked below
            reach(status)
            if status in ADMIN_HOLDER_TRANSITIONS[verb]:
                call(h, sender=admin)
            else:
                with reverts("HolderInvalidStatus", h, int(status)):
                    call(h, sender=admin)
            tried += 1
    # Pending: a fresh holder per verb
    for verb, call in calls.items():
        fresh = accounts.generate_test_account()
        chain.provider.set_balance(fresh.address, 10**21)
        holder_registry.registerHolder(b"k", "e", "r", 0, 0, sender=fresh)
        assert HolderStatus.PENDING in ADMIN_HOLDER_TRANSITIONS[verb]
        call(fresh, sender=admin)
        tried += 1
    assert tried == 15

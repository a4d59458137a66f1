"""Hostile-input fixtures.

In-process tests reuse the holder integration ``World`` (anvil, a fresh deployment, three
active holders, holder-1 run in process behind a Starlette ``TestClient``, a committee epoch
of three members, threshold two) and run its members as in-process KOS members on the same
chain. Process-level tests (CLI, secret scan) use a real devnet, started exactly as the
end-to-end suite does.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from holder_agent.api import create_app
from kos.service import KosService
from tests.e2e.conftest import devnet  # noqa: F401 - the module-scoped devnet fixture
from tests.integration.holder.conftest import World, world  # noqa: F401 - the `world` fixture
from tests.support import devchain as devchain_plugin

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytest_plugins = ["tests.support.devchain"]


@pytest.fixture(scope="module")
def shared_world(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One ``World`` (deployment, three holders, holder-1 in process, a 2-of-3 committee) for a
    whole module.

    Deploying and registering holders costs seconds; tests that each use their own datasets
    and requests can share it. ``World.kos`` is the committee's members as in-process KOS
    members kept for the module, so each poll only settles what is new.
    """
    dev = devchain_plugin.devchain.__wrapped__(anvil_url)  # the plugin's own fixture body
    tmp = tmp_path_factory.mktemp("hostile-world")
    holders = dev.register_holders(3)
    w = World(dev, tmp, holders, dev.account("owner"), dev.account("requester"),
              agent=None, http=None, members=dev.start_committee(3, 2))  # type: ignore[arg-type]
    w.agent = w.make_agent(tmp / "holder-1")
    w.http = TestClient(create_app(w.agent.api))
    w.kos = kos_members(w)  # type: ignore[attr-defined]
    yield w


def kos_members(w: World, state: str = "kos") -> list[KosService]:
    """Every member of the world's committee epoch as an in-process KOS member (its own account
    and HPKE key; state in the test's tmp dir)."""
    return [KosService(w.chain, m.account, m.key, w.tmp / f"{state}-member-{i + 1}", confirmations=0)
            for i, m in enumerate(w.members)]


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The holder's "token not answered" log lines, with their reason fields."""
    out = []
    for record in caplog.records:
        if record.getMessage().startswith("token not answered"):
            fields = getattr(record, "fields", {})
            out.append(f"{record.getMessage()} {fields.get('reason', '')} {fields.get('error', '')}")
    return out

"""Start-up of a service: deployment, keys, chain id, then pluggable identity checks.

Every step fails with a message that names what is wrong and what to do about it, and
the exit code of :mod:`shardkey.service.exits`: a bad deployment file, key file or
passphrase is a configuration error (2); the RPC serving another chain, or an identity
check failing (holder key not registered, KOS role missing, no funds for gas) is an
identity error (3). The funds check (:data:`FUNDS_CHECK`) runs for every service, after the
service's own checks. No key or passphrase ever appears in a message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from eth_account.signers.local import LocalAccount

from shardkey.chain.bindings import ShardKeyChain, bind
from shardkey.chain.deployment import Deployment
from shardkey.chain.errors import DeploymentError
from shardkey.chain.funds import funds_problem
from shardkey.crypto.hpke import HpkePrivateKey
from shardkey.keys import KeyFileError, load_account_file, load_hpke_keystore, read_passphrase
from shardkey.service.exits import IdentityError
from shardkey.settings import resolve_confirmations


class AccountSettings(Protocol):
    """The settings every chain-watching service has (``KosSettings``, ``HolderSettings``,
    ``RepairerSettings``): a deployment, an account, a confirmation depth."""

    @property
    def deployment(self) -> Path: ...
    @property
    def rpc_url(self) -> str | None: ...
    @property
    def rpc_urls(self) -> list[str]: ...
    @property
    def max_fee_gwei(self) -> float | None: ...
    @property
    def account_key(self) -> Path: ...
    @property
    def passphrase_file(self) -> Path | None: ...
    @property
    def confirmations(self) -> int | None: ...


class NodeSettings(AccountSettings, Protocol):
    """The settings of a service that also holds an HPKE key (KOS, holder)."""

    @property
    def hpke_keystore(self) -> Path: ...


@dataclass(frozen=True)
class AccountNode:
    """What start-up established: the deployment, the chain, this service's account and depth."""

    deployment: Deployment
    chain: ShardKeyChain
    account: LocalAccount
    confirmations: int


@dataclass(frozen=True)
class Node(AccountNode):
    """An :class:`AccountNode` whose service also holds an HPKE key (KOS, holder)."""

    hpke_key: HpkePrivateKey


N = TypeVar("N", bound=AccountNode, contravariant=True)


@dataclass(frozen=True)
class IdentityCheck(Generic[N]):
    """One check of this service's standing on chain, run once the chain is connected.

    ``problem`` returns None when all is well, else what is wrong; ``remedy`` says what to
    run to fix it. Both end up in the :class:`IdentityError` message.
    """

    name: str
    problem: Callable[[N], str | None]
    remedy: str


def load_deployment(path: Path, rpc_url: str | None = None,
                    rpc_urls: Sequence[str] = ()) -> Deployment:
    """The deployment file at ``path``, its endpoints replaced by ``rpc_urls`` (fail-over
    order) or ``rpc_url`` when given."""
    try:
        deployment = Deployment.load(path)
    except DeploymentError as exc:
        raise DeploymentError(f"{exc}; point `deployment` at the file `shardkey network deploy` "
                              "(or `shardkey devnet up`) wrote") from None
    if rpc_urls:
        return dataclasses.replace(deployment, rpc_url=rpc_urls[0], rpc_urls=tuple(rpc_urls))
    return dataclasses.replace(deployment, rpc_url=rpc_url, rpc_urls=()) if rpc_url else deployment


def load_keys(settings: NodeSettings, passphrase_env: str,
              prompt: Callable[[], str] | None = None) -> tuple[LocalAccount, HpkePrivateKey]:
    """This service's account and HPKE key, both unlocked by one passphrase.

    The passphrase comes by the rule of :func:`shardkey.keys.read_passphrase`:
    ``passphrase_file`` when set, else ``passphrase_env``, else ``prompt`` (commands run on
    a terminal pass one; services do not). It is read once, only when a keystore needs
    it, and never kept.
    """
    cached: list[str] = []

    def passphrase() -> str:
        if not cached:
            source = str(settings.passphrase_file) if settings.passphrase_file else None
            cached.append(read_passphrase(source, passphrase_env, prompt))
        return cached[0]

    try:
        account = load_account_file(settings.account_key, passphrase)
        hpke_key = load_hpke_keystore(settings.hpke_keystore, passphrase())
    except KeyFileError as exc:
        raise KeyFileError(f"{exc}; check account_key, hpke_keystore, passphrase_file "
                           f"(or {passphrase_env})") from None
    finally:
        cached.clear()
    return account, hpke_key


def load_account(settings: AccountSettings, passphrase_env: str,
                 prompt: Callable[[], str] | None = None) -> LocalAccount:
    """This service's account alone (a service without an HPKE key: the repairer); the
    passphrase, when the keystore needs one, by the rule of :func:`load_keys`."""
    def passphrase() -> str:
        source = str(settings.passphrase_file) if settings.passphrase_file else None
        return read_passphrase(source, passphrase_env, prompt)

    try:
        return load_account_file(settings.account_key, passphrase)
    except KeyFileError as exc:
        raise KeyFileError(f"{exc}; check account_key, passphrase_file (or {passphrase_env})") from None


def connect(deployment: Deployment, source: Path, max_fee_gwei: float | None = None) -> ShardKeyChain:
    """:func:`bind`; an RPC endpoint serving another chain is refused."""
    chain = bind(deployment, max_fee_gwei)
    served = chain.client.chain_id
    if served != deployment.chain_id:
        raise IdentityError(f"{source}: chain id {deployment.chain_id}, but the RPC endpoint "
                            f"{chain.client.where} serves chain {served}; set rpc_url to a node "
                            "of the deployment's chain")
    return chain


def _funds_problem(node: AccountNode) -> str | None:
    return funds_problem(node.chain.client, node.account.address)


FUNDS_CHECK: IdentityCheck[AccountNode] = IdentityCheck(
    "gas funds", _funds_problem,
    "send ETH to this account from a funded wallet or a faucet, then start again "
    "(`shardkey holder status` / `shardkey kos status` show the balance)")


def run_checks(node: N, checks: Sequence[IdentityCheck[N]]) -> None:
    """Run ``checks`` in order; the first problem raises :class:`IdentityError`."""
    for check in checks:
        problem = check.problem(node)
        if problem is not None:
            raise IdentityError(f"{check.name}: {problem}; {check.remedy}")


def start_node(settings: NodeSettings, passphrase_env: str,
               checks: Sequence[IdentityCheck[Node]] = ()) -> Node:
    """Deployment, keys, chain id, confirmation depth, ``checks``, then funds; see the module doc."""
    deployment = load_deployment(settings.deployment, settings.rpc_url, settings.rpc_urls)
    account, hpke_key = load_keys(settings, passphrase_env)
    chain = connect(deployment, settings.deployment, settings.max_fee_gwei)
    node = Node(deployment=deployment, chain=chain, account=account, hpke_key=hpke_key,
                confirmations=resolve_confirmations(settings.confirmations, deployment.chain_id))
    run_checks(node, (*checks, FUNDS_CHECK))
    return node


def start_account_node(settings: AccountSettings, passphrase_env: str,
                       checks: Sequence[IdentityCheck[AccountNode]] = ()) -> AccountNode:
    """:func:`start_node` for a service without an HPKE key (the repairer)."""
    deployment = load_deployment(settings.deployment, settings.rpc_url, settings.rpc_urls)
    account = load_account(settings, passphrase_env)
    chain = connect(deployment, settings.deployment, settings.max_fee_gwei)
    node = AccountNode(deployment=deployment, chain=chain, account=account,
                       confirmations=resolve_confirmations(settings.confirmations, deployment.chain_id))
    run_checks(node, (*checks, FUNDS_CHECK))
    return node

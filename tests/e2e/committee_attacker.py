"""An attacker of committee datasets, run as its own process by tests/e2e/test_committee.py.

It holds some committee members' HPKE keystores (with their passphrases), copies of every
holder agent's data folder (bundles and every state file the agents keep) and a dump of the
chain's events (``DealRegistered``: the sealed shares and commitments). It works offline and
tries to open every fragment holder's bundle:

- with every share its members' keys open (``kos-share/v1`` info), combined when it has at
  least ``t_k`` of one wrap key (and, a guess, the single share as the key when it has fewer);
- with every 32-byte value the holders' state files contain (hex strings of the JSON files,
  and raw 32-byte windows of every small binary file): a share or wrap key an agent wrote to disk
  would be found here.

It prints a JSON report (opened, tried) and exits 0 when it opened at least one bundle,
``NOTHING_OPENED`` (3) when it opened none, 2 on bad arguments.

    python -m tests.e2e.committee_attacker --events events.json --holders DIR [DIR ...]
        --member KEYSTORE:PASSPHRASE_FILE:ADDRESS [...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path

from shardkey.crypto.bundle import unwrap_bundle
from shardkey.crypto.errors import CryptoError
from shardkey.crypto.hpke import HpkePrivateKey, committee_share_info
from shardkey.crypto.shamir import Share, combine
from shardkey.keys import load_hpke_keystore

NOTHING_OPENED = 3
SMALL_FILE = 4096  # raw 32-byte windows are tried in binary files up to this size
HEX32 = re.compile(r"[0-9a-fA-F]{64}")


def _bundles(folders: list[Path], dataset_hex: str, epoch: int) -> list[Path]:
    name = "bundle" if epoch == 1 else f"bundles/{epoch}"
    return [p for f in folders if (p := f / "datasets" / dataset_hex / name).is_file()]


def _leaked_candidates(folders: list[Path]) -> set[bytes]:
    """Every 32-byte value the holders' non-bundle files could hold."""
    found: set[bytes] = set()
    for folder in folders:
        for path in folder.rglob("*"):
            if not path.is_file() or path.name == "bundle" or path.parent.name in ("bundles", "shards"):
                continue
            data = path.read_bytes()
            found.update(bytes.fromhex(h) for h in HEX32.findall(data.decode("latin-1")))
            if len(data) <= SMALL_FILE and path.suffix != ".json":
                found.update(data[k:k + 32] for k in range(0, max(0, len(data) - 31)))
    return found


def _member_shares(deal: dict, keys: dict[str, HpkePrivateKey], chain_id: int, j: int) -> list[Share]:
    members: list[str] = deal["members"]
    holder = deal["holders"][j]
    ds = bytes.fromhex(deal["dataset"])
    shares = []
    for i, member in enumerate(members):
        key = keys.get(member.lower())
        if key is None:
            continue
        sealed = bytes.fromhex(deal["sealed_shares"][j * len(members) + i])
        try:
            info = committee_share_info(chain_id, ds, holder, member, deal["committee_epoch"])
            value = key.open(sealed, info)
        except CryptoError:
            continue
        shares.append(Share(i + 1, value))
    return shares


def _candidates(shares: list[Share], threshold: int) -> list[bytes]:
    if len(shares) >= threshold:
        return [combine(list(subset), threshold) for subset in itertools.combinations(shares, threshold)]
    return [s.value for s in shares]  # fewer than t_k: the shares themselves are the only guesses


def attack(events: dict, folders: list[Path], keys: dict[str, HpkePrivateKey]) -> dict:
    """Try every candidate key on every fragment holder's bundle; report what opened."""
    leaked = _leaked_candidates(folders)
    opened: list[dict] = []
    tried: list[dict] = []
    for deal in events["deals"]:
        ds_hex = deal["dataset"]
        for j, holder in enumerate(deal["holders"]):
            bundles = _bundles(folders, ds_hex, deal["fragment_epoch"])
            shares = _member_shares(deal, keys, events["chain_id"], j)
            candidates = set(_candidates(shares, deal["threshold"])) | leaked
            entry = {"dataset": ds_hex, "holder": holder, "bundles": len(bundles), "shares": len(shares),
                     "candidates": len(candidates)}
            tried.append(entry)
            for path, key in itertools.product(bundles, candidates):
                try:
                    unwrap_bundle(key, path.read_bytes(), bytes.fromhex(ds_hex), j + 1)
                except CryptoError:
                    continue
                opened.append({**entry, "bundle": str(path), "from_shares": key not in leaked})
                break
    return {"opened": opened, "tried": tried}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="committee_attacker")
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--holders", type=Path, nargs="+", required=True)
    parser.add_argument("--member", action="append", default=[], help="KEYSTORE:PASSPHRASE_FILE:ADDRESS")
    args = parser.parse_args(argv)
    keys: dict[str, HpkePrivateKey] = {}
    for spec in args.member:
        try:
            keystore, passphrase_file, address = spec.rsplit(":", 2)
        except ValueError:
            print(f"--member {spec!r}: expected KEYSTORE:PASSPHRASE_FILE:ADDRESS", file=sys.stderr)
            return 2
        passphrase = Path(passphrase_file).read_text().strip()
        keys[address.lower()] = load_hpke_keystore(Path(keystore), passphrase)
    report = attack(json.loads(args.events.read_text()), args.holders, keys)
    print(json.dumps(report))
    return 0 if report["opened"] else NOTHING_OPENED


if __name__ == "__main__":
    sys.exit(main())

"""Key files: Ethereum accounts and the encrypted HPKE keystore.

- Ethereum accounts are eth-account keystores (Web3 Secret Storage V3: scrypt +
  AES-128-CTR; ``shardkey keys new --kind eth`` writes them with the scrypt cost below).
  On a devnet, named accounts are plain hex key files (mode 0600); they guard nothing of
  value and are listed in ``devnet.json``.
- HPKE private keys (KOS, holders) live in a ShardKey keystore: scrypt (n=2^15, r=8,
  p=1) derives a 256-bit key from the passphrase, AES-256-GCM encrypts the serialized
  key with the file's header as associated data.

Passphrases follow one rule everywhere (:func:`read_passphrase`): a passphrase file when
one is configured, else an environment variable, else a prompt when stdin is a terminal.
The public part of a key file (address, HPKE public key and suite) is read without any
passphrase (:func:`inspect_key_file`), so address books never decrypt other people's keys.

Every file written here is created 0600, atomically. No key or passphrase is ever put
in an error message.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from shardkey.crypto.hpke import SUITE_NAMES, HpkePrivateKey, HpkeSuiteId
from shardkey.errors import UsageError
from shardkey.fsutil import atomic_write_bytes

KEYSTORE_VERSION = "shardkey-hpke-keystore/1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class KeyFileError(UsageError):
    """A key file is missing, malformed, or its passphrase is wrong."""


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def save_hpke_keystore(path: Path, key: HpkePrivateKey, passphrase: str,
                       rng: Callable[[int], bytes] = os.urandom) -> None:
    """Encrypt ``key`` under ``passphrase`` into ``path`` (0600, atomic)."""
    if not passphrase:
        raise KeyFileError("an HPKE keystore needs a non-empty passphrase")
    salt, nonce = rng(16), rng(12)
    header = {"version": KEYSTORE_VERSION, "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R,
              "p": SCRYPT_P, "salt": salt.hex(), "nonce": nonce.hex(),
              "public_key": key.public_key_bytes().hex(), "suite": int(key.suite)}
    aad = json.dumps(header, sort_keys=True).encode()
    secret = _scrypt(passphrase.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(secret).encrypt(nonce, key.to_bytes(), aad)
    body = dict(header, ciphertext=base64.b64encode(ciphertext).decode())
    atomic_write_bytes(path, json.dumps(body, indent=1).encode(), mode=0o600)


def load_hpke_keystore(path: Path, passphrase: str) -> HpkePrivateKey:
    """Decrypt an HPKE keystore; a wrong passphrase raises :class:`KeyFileError`."""
    try:
        body = json.loads(Path(path).read_text())
        header = {k: body[k] for k in ("version", "kdf", "n", "r", "p", "salt", "nonce",
                                       "public_key", "suite")}
        ciphertext = base64.b64decode(body["ciphertext"])
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such keystore file") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a ShardKey HPKE keystore ({exc.__class__.__name__})") from None
    if header["version"] != KEYSTORE_VERSION or header["kdf"] != "scrypt":
        raise KeyFileError(f"{path}: unsupported keystore version {header['version']!r}")
    aad = json.dumps(header, sort_keys=True).encode()
    secret = _scrypt(passphrase.encode(), bytes.fromhex(header["salt"]), int(header["n"]),
                     int(header["r"]), int(header["p"]))
    try:
        raw = AESGCM(secret).decrypt(bytes.fromhex(header["nonce"]), ciphertext, aad)
    except InvalidTag:
        raise KeyFileError(f"{path}: wrong passphrase (or the keystore was modified)") from None
    return HpkePrivateKey.from_bytes(raw)


def read_passphrase(source: str | Path | None, env_var: str = "SHARDKEY_PASSWORD",
                    prompt: Callable[[], str] | None = None) -> str:
    """The one passphrase rule: the file ``source``, else ``env_var``, else ``prompt``.

    ``prompt`` is only called when given (interactive commands pass one that asks on a
    terminal); without any source the error names both the file option and the variable.
    """
    if source:
        try:
            return Path(source).read_text().rstrip("\n")
        except OSError as exc:
            raise KeyFileError(f"passphrase file {source}: {exc.strerror}") from None
    value = os.environ.get(env_var)
    if value is not None:
        return value
    if prompt is not None:
        return prompt()
    raise KeyFileError(f"no passphrase: set {env_var} or give a passphrase file")


def save_eth_keystore(path: Path, account: LocalAccount, passphrase: str) -> None:
    """Encrypt ``account`` into a V3 keystore at ``path`` (0600, atomic), scrypt n=2^15."""
    if not passphrase:
        raise KeyFileError("an account keystore needs a non-empty passphrase")
    keystore = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=SCRYPT_N)
    atomic_write_bytes(path, json.dumps(keystore, indent=1).encode(), mode=0o600)


@dataclass(frozen=True)
class KeyFileInfo:
    """The public part of a key file: never a private key."""

    path: Path
    kind: str
    """``eth`` (V3 keystore), ``eth-plain`` (devnet hex key) or ``hpke``."""
    address: str | None = None
    public_key: bytes | None = None
    suite: str | None = None

    def to_json(self) -> dict[str, object]:
        """The ``keys show --json`` form."""
        out: dict[str, object] = {"file": str(self.path), "kind": self.kind}
        if self.address:
            out["address"] = self.address
        if self.public_key is not None:
            out["public_key"] = self.public_key.hex()
            out["suite"] = self.suite
        return out


def _suite_name(value: object) -> str:
    suite = HpkeSuiteId(int(value))  # type: ignore[call-overload]
    return next(name for name, s in SUITE_NAMES.items() if s is suite)


def inspect_key_file(path: Path) -> KeyFileInfo:
    """What a key file is and its public part, read without a passphrase.

    A V3 keystore names its address in clear; an HPKE keystore its public key and suite;
    a devnet hex key file holds no secret worth guarding, so its address is derived.
    """
    path = Path(path)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not a readable key file ({exc.__class__.__name__})") from None
    if not text.startswith("{"):
        return KeyFileInfo(path, "eth-plain", address=load_account_file(path).address)
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        raise KeyFileError(f"{path}: not a key file (invalid JSON)") from None
    if isinstance(body, dict) and body.get("version") == KEYSTORE_VERSION:
        try:
            return KeyFileInfo(path, "hpke", public_key=bytes.fromhex(str(body["public_key"])),
                               suite=_suite_name(body["suite"]))
        except (KeyError, ValueError, TypeError):
            raise KeyFileError(f"{path}: HPKE keystore without a valid public_key/suite") from None
    if isinstance(body, dict) and body.get("version") == 3 and is_address(str(body.get("address", ""))):
        return KeyFileInfo(path, "eth", address=to_checksum_address(str(body["address"])))
    raise KeyFileError(f"{path}: neither an eth-account V3 keystore (with its address) nor a "
                       "ShardKey HPKE keystore")


def save_plain_account_key(path: Path, account: LocalAccount) -> None:
    """Devnet only: write an account's private key as hex (0600, atomic)."""
    atomic_write_bytes(path, account.key.hex().encode() + b"\n", mode=0o600)


def load_account_file(path: Path, passphrase_provider: Callable[[], str] | None = None) -> LocalAccount:
    """Load an account from a devnet hex key file or an eth-account keystore."""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
    if text.startswith("{"):
        try:
            keystore = json.loads(text)
        except json.JSONDecodeError:
            raise KeyFileError(f"{path}: not a keystore (invalid JSON)") from None
        if passphrase_provider is None:
            raise KeyFileError(f"{path}: a passphrase is needed (SHARDKEY_PASSWORD)")
        try:
            key = Account.decrypt(keystore, passphrase_provider())
        except ValueError:
            raise KeyFileError(f"{path}: wrong passphrase for this keystore") from None
        account: LocalAccount = Account.from_key(key)
        return account
    try:
        loaded: LocalAccount = Account.from_key(bytes.fromhex(text.removeprefix("0x")))
        return loaded
    except ValueError:
        raise KeyFileError(f"{path}: not a hex private key or an eth-account keystore") from None

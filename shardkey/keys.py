"""Key files: Ethereum accounts and the encrypted HPKE keystore.

- Ethereum accounts are eth-account keystores (scrypt + AES-128-CTR, the Web3 Secret
  Storage format), unlocked by a passphrase from ``SHARDKEY_PASSWORD`` or a prompt. On a
  devnet, named accounts are plain hex key files (mode 0600) derived from anvil's
  well-known mnemonic; they guard nothing of value and are listed in ``devnet.json``.
- HPKE private keys (KOS, holders) live in a ShardKey keystore: scrypt (n=2^15, r=8,
  p=1) derives a 256-bit key from the passphrase, AES-256-GCM encrypts the serialized
  key with the file's header as associated data.

Every file written here is created 0600, atomically. No key or passphrase is ever put
in an error message.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account
from eth_account.signers.local import LocalAccount

from shardkey.crypto.hpke import HpkePrivateKey
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


def read_passphrase(source: str | None, env_var: str = "SHARDKEY_PASSWORD") -> str:
    """A passphrase from a file (``source``), else the environment variable."""
    if source:
        try:
            return Path(source).read_text().rstrip("\n")
        except OSError as exc:
            raise KeyFileError(f"passphrase file {source}: {exc.strerror}") from None
    value = os.environ.get(env_var)
    if value is None:
        raise KeyFileError(f"no passphrase: set {env_var} or give a passphrase file")
    return value


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

"""Secrets at rest: the farm's 32-byte key and the AES-GCM seal of the values FreeSWITCH or a carrier needs back.

A sealed value is stored as ``enc:v1:<base64 of 12-byte nonce + ciphertext + tag>``, bound (as AES-GCM
associated data) to the table, column and row it was written for, so a copied ciphertext does not open
elsewhere. The key is ``FSFARM_SECRET_KEY`` (base64, read by ``controller.config``), else
``<state dir>/secret-key``, made once (0600). Every controller sharing a database needs the same key.

The process holds one active key (``use``, called when the database is opened); the stores seal and
open through ``active()``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controller.errors import FarmError

PREFIX = "enc:v1:"
KEY_FILE = "secret-key"
KEY_BYTES = 32
_NONCE = 12


class SecretKeyError(FarmError):
    """The secret key is missing, unreadable, or not the one the stored secrets were sealed with."""

    status = 500


def decode_key(text: str, source: str) -> bytes:
    """The 32 bytes a base64 key text stands for; SecretKeyError naming ``source`` otherwise."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyError(f"{source}: the secret key must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"{source}: the secret key must be {KEY_BYTES} bytes, not {len(key)}")
    return key


def load_key(configured: str, state_dir: Path) -> bytes:
    """``configured`` (FSFARM_SECRET_KEY) when given, else ``<state_dir>/secret-key``, generated once (0600)."""
    if configured:
        return decode_key(configured, "FSFARM_SECRET_KEY")
    path = state_dir / KEY_FILE
    try:
        if not path.exists():
            _create_key_file(path)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        text = path.read_text()
    except OSError as exc:
        raise SecretKeyError(f"{path}: cannot read or create the secret key: {exc.strerror}") from None
    return decode_key(text, str(path))


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` whole (a temporary file linked into place), unless one is there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
        os.link(tmp, path)  # atomic and refuses to replace: a process starting at the same moment keeps its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


class Cipher:
    """AES-256-GCM over text values; empty stays empty (nothing set), text without the prefix is read as is."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, label: str) -> str:
        """A password every controller holding this key derives alike for ``label`` (HMAC-SHA256, hex)."""
        return hmac.new(self._key, label.encode(), hashlib.sha256).hexdigest()

    def seal(self, value: str, where: str) -> str:
        """``value`` sealed for ``where`` (``table.column:row id``); an empty value stays empty."""
        if not value:
            return value
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode(), where.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, where: str) -> str:
        """The plaintext of a stored value (one written before sealing, without the prefix, as is); SecretKeyError
        when it does not decrypt for ``where`` (another key, or a value moved or altered)."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            raw = binascii.a2b_base64(stored[len(PREFIX) :], strict_mode=True)
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], where.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretKeyError(
                f"cannot decrypt {where}: this controller's secret key (FSFARM_SECRET_KEY or <state dir>/{KEY_FILE}) "
                "is not the one it was sealed with; every controller sharing the database needs the same key",
                {"where": where},
            ) from None


_active: Cipher | None = None


def use(key: bytes) -> Cipher:
    """Make ``key`` this process's key (opening the database does it) and return its cipher."""
    global _active
    _active = Cipher(key)
    return _active


def active() -> Cipher:
    """This process's cipher; SecretKeyError when no key was loaded (the database was not opened by runtime)."""
    if _active is None:
        raise SecretKeyError("no secret key is loaded: open the database with controller.runtime.open_database")
    return _active

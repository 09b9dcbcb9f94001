"""WeChat's message encryption (安全模式): opening the AES envelope of a push or an echostr.

WeChat encrypts `16 random bytes + 4-byte big-endian length + message + AppID` with
AES-256-CBC, the key being the EncodingAESKey decoded from base64 and the IV its first 16
bytes, padded PKCS#7 to 32 bytes. The primitives are the `cryptography` package's.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# The EncodingAESKey is 32 bytes in base64 without its one trailing "=".
ENCODING_AES_KEY_LENGTH = 43
# WeChat pads to the key's length (32 bytes), not to AES's 16-byte block.
PADDING_BITS = 32 * 8
_RANDOM_PREFIX = 16
_LENGTH_END = _RANDOM_PREFIX + 4


class InvalidEncodingAESKey(ValueError):
    """The configured EncodingAESKey is not 43 characters of base64 for 32 bytes."""


class UndecryptablePush(Exception):
    """Not WeChat's encryption of anything for our key and AppID.

    Its message names the failing step only, never the key or what was decrypted.
    """


class PushCipher:
    """Opens what WeChat encrypted with one EncodingAESKey for one AppID."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != ENCODING_AES_KEY_LENGTH:
            raise InvalidEncodingAESKey(
                f"the EncodingAESKey must be {ENCODING_AES_KEY_LENGTH} characters"
            )
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            raise InvalidEncodingAESKey("the EncodingAESKey is not base64") from None
        if len(key) != 32:
            raise InvalidEncodingAESKey("the EncodingAESKey does not decode to 32 bytes")
        self._key = key
        self._app_id = app_id.encode("utf-8")

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside `encrypted` (base64), if WeChat encrypted it for our AppID."""
        try:
            ciphertext = base64.b64decode(encrypted, validate=True)
        except ValueError:
            raise UndecryptablePush("not base64") from None
        if not ciphertext or len(ciphertext) % (PADDING_BITS // 8):
            raise UndecryptablePush("not a whole number of blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(PADDING_BITS).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise UndecryptablePush("bad padding") from None
        if len(plain) < _LENGTH_END:
            raise UndecryptablePush("too short")
        end = _LENGTH_END + int.from_bytes(plain[_RANDOM_PREFIX:_LENGTH_END], "big")
        if end > len(plain):
            raise UndecryptablePush("length past the end")
        # Another app's message, or bytes that happened to unpad: not ours either way.
        if plain[end:] != self._app_id:
            raise UndecryptablePush("another AppID")
        return plain[_LENGTH_END:end]

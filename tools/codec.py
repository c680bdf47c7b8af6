"""Compression for checkpoint blobs, plugged in through LangGraph's serializer codec hook."""

from __future__ import annotations

import zlib

from langgraph.checkpoint.serde.base import CipherProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

# Below this size zlib's header costs more than it saves.
MIN_COMPRESS_BYTES = 128


class ZlibCodec(CipherProtocol):
    """A reversible bytes transform: zlib for blobs worth compressing, raw otherwise."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """Return ("zlib", compressed) or ("raw", plaintext) for small blobs."""
        if len(plaintext) < MIN_COMPRESS_BYTES:
            return "raw", plaintext
        return "zlib", zlib.compress(plaintext, 1)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """Undo `encrypt`."""
        if ciphername == "raw":
            return ciphertext
        if ciphername == "zlib":
            return zlib.decompress(ciphertext)
        raise ValueError(f"unknown checkpoint codec {ciphername!r}")


def compressed_serde() -> EncryptedSerializer:
    """Return the checkpoint serializer: LangGraph's msgpack, zlib-compressed.

    Checkpoints are mostly channel-version bookkeeping that repeats from step to step, so
    they shrink about 3x; LangGraph's `EncryptedSerializer` is its hook for a bytes codec
    around the serializer and keeps the strict-msgpack allowlist working.
    """
    return EncryptedSerializer(ZlibCodec(), JsonPlusSerializer())

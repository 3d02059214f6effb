"""The SCRAM login as Apache Kafka does it, in front of a tansu that cannot (tests only).

tansu 0.6 offers SCRAM-SHA-256 and -512 but keeps no credentials (docs/RELIABILITY.md, Known limits), so no login
ever succeeds there. :class:`ScramGate` plays the broker's side of the SASL exchange on each client connection,
the way Kafka does: ApiVersions is answered by tansu, SaslHandshake (v1) and SaslAuthenticate (v0 to v2) by the
gate, any other request before a successful login closes the connection, a wrong proof is error 58
(SaslAuthenticationFailed). After the login every byte goes to tansu unchanged. The SCRAM arithmetic is RFC 5802
with the RFC 7677 hashes, from the stdlib; the client side under test is the Kafka clients' own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

__all__ = ["ScramGate"]

_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_ITERATIONS = 4096


@dataclass(frozen=True)
class _Credential:
    salt: bytes
    stored_key: bytes
    server_key: bytes


@dataclass
class ScramGate:
    """SCRAM users ``{name: password}`` for both mechanisms; :meth:`login` runs one connection's SASL exchange."""

    users: dict[str, str]
    _credentials: dict[tuple[str, str], _Credential] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, password in self.users.items():
            for mechanism, digest in _HASHES.items():
                salt = os.urandom(16)
                salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, _ITERATIONS)
                client_key = hmac.new(salted, b"Client Key", digest).digest()
                server_key = hmac.new(salted, b"Server Key", digest).digest()
                stored_key = hashlib.new(digest, client_key).digest()
                self._credentials[name, mechanism] = _Credential(salt, stored_key, server_key)

    async def login(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        """True once the client has logged in; False when the connection is to be closed."""
        mechanism: str | None = None
        scram: _Exchange | None = None
        while True:
            try:
                frame = await reader.readexactly(struct.unpack(">i", await reader.readexactly(4))[0])
            except (asyncio.IncompleteReadError, ConnectionError):
                return False
            api_key, version, correlation = struct.unpack(">hhi", frame[:8])
            if api_key == _API_VERSIONS:  # tansu answers: it lists SaslHandshake and SaslAuthenticate
                up_writer.write(len(frame).to_bytes(4, "big") + frame)
                await up_writer.drain()
                answer = await up_reader.readexactly(struct.unpack(">i", await up_reader.readexactly(4))[0])
                writer.write(len(answer).to_bytes(4, "big") + answer)
            elif api_key == _SASL_HANDSHAKE and version >= 1:
                body = _skip_client_id(frame, 8)
                wanted = _string(frame, body)
                known = wanted in _HASHES
                mechanism = wanted if known else None
                offered = b"".join(_short_string(m) for m in _HASHES)
                reply = struct.pack(">ihi", correlation, 0 if known else 33, len(_HASHES)) + offered
                writer.write(len(reply).to_bytes(4, "big") + reply)
            elif api_key == _SASL_AUTHENTICATE and mechanism is not None:
                token = _auth_bytes(frame, version)
                if scram is None:
                    scram = _Exchange(self._credentials, mechanism)
                answer_bytes, error = scram.step(token)
                writer.write(_authenticate_reply(correlation, version, answer_bytes, error))
                await writer.drain()
                if error:
                    return False
                if scram.done:
                    return True
                continue
            else:  # Kafka closes a connection that sends anything else before logging in
                return False
            await writer.drain()


class _Exchange:
    """One SCRAM conversation, server side (RFC 5802 section 5)."""

    def __init__(self, credentials: dict[tuple[str, str], _Credential], mechanism: str) -> None:
        self.credentials, self.mechanism, self.digest = credentials, mechanism, _HASHES[mechanism]
        self.done = False
        self.first_bare = self.server_first = self.nonce = ""
        self.credential: _Credential | None = None

    def step(self, token: bytes) -> tuple[bytes, str | None]:
        failed = (
            "Authentication failed during authentication due to invalid credentials with SASL mechanism "
            + self.mechanism
        )
        text = token.decode()
        if not self.server_first:  # client-first: "n,,n=user,r=nonce"
            self.first_bare = text.split(",", 2)[2]
            fields = dict(part.split("=", 1) for part in self.first_bare.split(","))
            self.credential = self.credentials.get((fields["n"], self.mechanism))
            self.nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
            salt = self.credential.salt if self.credential else os.urandom(16)  # an unknown user learns nothing yet
            self.server_first = f"r={self.nonce},s={base64.b64encode(salt).decode()},i={_ITERATIONS}"
            return self.server_first.encode(), None
        without_proof, _, proof = text.rpartition(",p=")  # client-final: "c=biws,r=nonce,p=proof"
        fields = dict(part.split("=", 1) for part in without_proof.split(","))
        if self.credential is None or fields.get("r") != self.nonce:
            return b"", failed
        auth_message = f"{self.first_bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(self.credential.stored_key, auth_message, self.digest).digest()
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=False))
        if not hmac.compare_digest(hashlib.new(self.digest, client_key).digest(), self.credential.stored_key):
            return b"", failed
        self.done = True
        server_signature = hmac.new(self.credential.server_key, auth_message, self.digest).digest()
        return b"v=" + base64.b64encode(server_signature), None


def _skip_client_id(frame: bytes, at: int) -> int:
    (length,) = struct.unpack(">h", frame[at : at + 2])
    return at + 2 + max(length, 0)


def _string(frame: bytes, at: int) -> str:
    (length,) = struct.unpack(">h", frame[at : at + 2])
    return frame[at + 2 : at + 2 + length].decode()


def _short_string(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def _uvarint(frame: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = frame[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _to_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _auth_bytes(frame: bytes, version: int) -> bytes:
    at = _skip_client_id(frame, 8)
    if version < 2:
        (length,) = struct.unpack(">i", frame[at : at + 4])
        return frame[at + 4 : at + 4 + length]
    tags, at = _uvarint(frame, at)  # request header v2: tagged fields, none expected
    for _ in range(tags):
        _, at = _uvarint(frame, at)
        size, at = _uvarint(frame, at)
        at += size
    length, at = _uvarint(frame, at)  # compact bytes: length + 1
    return frame[at : at + length - 1]


def _authenticate_reply(correlation: int, version: int, token: bytes, error: str | None) -> bytes:
    code = 58 if error else 0
    if version < 2:
        message = struct.pack(">h", -1) if error is None else _short_string(error)
        body = struct.pack(">ih", correlation, code) + message + struct.pack(">i", len(token)) + token
        if version == 1:
            body += struct.pack(">q", 0)
    else:
        message = b"\x00" if error is None else _to_uvarint(len(error) + 1) + error.encode()
        body = (
            struct.pack(">i", correlation)
            + b"\x00"  # response header v1: no tagged fields
            + struct.pack(">h", code)
            + message
            + _to_uvarint(len(token) + 1)
            + token
            + struct.pack(">q", 0)
            + b"\x00"
        )
    return len(body).to_bytes(4, "big") + body

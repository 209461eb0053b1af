"""Addresses and channel options shared by Client and Worker."""

from __future__ import annotations

from typing import Optional

import grpc

# Payloads go up to the server's limit (1 MiB by default, configurable): do not cap below it.
MAX_MESSAGE = 64 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # Notice a dead connection on an otherwise idle worker stream.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def target(addr: str) -> tuple[str, bool]:
    """``"host:port"``, ``"http://host:port"`` or ``"https://host"`` → (grpc target, tls?)."""
    tls = False
    if addr.startswith("https://"):
        addr, tls = addr[len("https://") :], True
    elif addr.startswith("http://"):
        addr = addr[len("http://") :]
    addr = addr.rstrip("/")
    if not addr:
        raise ValueError("empty pfc address")
    if ":" not in addr.rsplit("]", 1)[-1]:
        addr += ":443" if tls else ":50051"
    return addr, tls


def credentials_for(
    tls: bool, credentials: Optional[grpc.ChannelCredentials]
) -> Optional[grpc.ChannelCredentials]:
    if credentials is not None:
        return credentials
    return grpc.ssl_channel_credentials() if tls else None


def sync_channel(addr: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
    tgt, tls = target(addr)
    creds = credentials_for(tls, credentials)
    if creds is None:
        return grpc.insecure_channel(tgt, options=OPTIONS)
    return grpc.secure_channel(tgt, creds, options=OPTIONS)


def aio_channel(addr: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.aio.Channel:
    tgt, tls = target(addr)
    creds = credentials_for(tls, credentials)
    if creds is None:
        return grpc.aio.insecure_channel(tgt, options=OPTIONS)
    return grpc.aio.secure_channel(tgt, creds, options=OPTIONS)


def bearer(token: "Optional[str]") -> "tuple[tuple[str, str], ...]":
    """The call metadata carrying `token` (an API key or Login token), or none.

    `token` defaults to the PFC_TOKEN environment variable when None is passed by callers
    that resolved it with `token_from_env`.
    """
    if not token:
        return ()
    return (("authorization", f"Bearer {token.strip()}"),)


def token_from_env(token: "Optional[str]") -> "Optional[str]":
    """`token` if given, else PFC_TOKEN from the environment (empty: none)."""
    import os

    if token is None:
        token = os.environ.get("PFC_TOKEN")
    return token.strip() or None if token else None

"""Artifact keys of store items: an injective, prefix-preserving text form of (namespace, key).

``prefix + escaped(label) + "/" ... + ":" + key``, each label with ``%``, ``/``, ``:`` and ``#``
percent-escaped (RFC 3986 style), so the items of every namespace that starts with a given
namespace share a key prefix and ``segment.list(prefix)`` finds them. A form longer than
``MAX_KEY_BYTES`` becomes the longest whole-label prefix that fits, ``#``, and the SHA-256 of the
full form; the full namespace and key are kept in the item and checked on every read.
"""

from __future__ import annotations

import hashlib

from agent_coherence_shm._native import MAX_KEY_BYTES

HASH_HEX = 64  # sha256 in hex
#: Bytes of the label prefix a hashed key keeps.
HASHED_BUDGET = MAX_KEY_BYTES - 1 - HASH_HEX


def escape(label: str) -> str:
    """``label`` with the four characters of the key syntax percent-escaped."""
    if "%" in label or "/" in label or ":" in label or "#" in label:
        label = (
            label.replace("%", "%25").replace("/", "%2F").replace(":", "%3A").replace("#", "%23")
        )
    return label


def unescape(label: str) -> str:
    if "%" not in label:
        return label
    return label.replace("%2F", "/").replace("%3A", ":").replace("%23", "#").replace("%25", "%")


def scope_text(prefix: str, namespace: tuple[str, ...]) -> str:
    """The key prefix shared by every item of ``namespace`` and of the namespaces under it."""
    return prefix + "".join(escape(label) + "/" for label in namespace)


def kept_labels(prefix: str, namespace: tuple[str, ...], budget: int = HASHED_BUDGET) -> str:
    """The longest run of whole leading labels of ``namespace`` that fits in ``budget`` bytes."""
    kept = prefix
    for label in namespace:
        longer = kept + escape(label) + "/"
        if len(longer.encode()) > budget:
            break
        kept = longer
    return kept


def artifact_key(prefix: str, namespace: tuple[str, ...], key: str) -> str:
    """The artifact key of item ``key`` in ``namespace`` (see the module doc)."""
    full = scope_text(prefix, namespace) + ":" + key
    if len(full.encode()) <= MAX_KEY_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()
    return kept_labels(prefix, namespace) + "#" + digest


def decode(prefix: str, akey: str) -> tuple[tuple[str, ...], str] | None:
    """(namespace, key) of a full-form artifact key; ``None`` for a hashed one."""
    rest = akey[len(prefix) :]
    colon = rest.find(":")
    hashed = rest.find("#")
    if colon < 0 or (0 <= hashed < colon):
        return None
    labels = rest[:colon].split("/")[:-1]  # each label ends with "/"
    return tuple(unescape(label) for label in labels), rest[colon + 1 :]

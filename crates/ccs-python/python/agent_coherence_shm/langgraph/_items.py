"""The ``Item``s a ``ShmStore`` returns: LangGraph ``Item``s whose ``value`` and timestamps are
made on first access.

A MISS returns before it decodes the value or builds two datetimes nobody may read: a
``StoredItem`` keeps the value's stored bytes and the store's decoder of their kind, and the
timestamps as microseconds since the epoch (UTC), and makes each on first access. Items pickle
and copy as the plain ``Item`` they stand for. The native ``StoreEntry`` builds them slot by
slot, as ``stored_item`` does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import Item

from agent_coherence_shm.langgraph._codec import (
    BODY,
    CREATED,
    KEY,
    KIND,
    UPDATED,
    VALUE,
    Codec,
    Doc,
)

_UTC = timezone.utc


def _datetime(micros: int) -> datetime:
    # Exact: a double resolves 0.24 us at today's epoch seconds, fromtimestamp rounds to 1 us.
    return datetime.fromtimestamp(micros / 1_000_000, _UTC)


class _Timestamp:
    """A datetime attribute made from stored microseconds (slot ``micros``) on first access
    and kept in slot ``made``."""

    def __init__(self, micros: str, made: str) -> None:
        self.micros, self.made = micros, made

    def __get__(self, item: Any, owner: Any = None) -> Any:
        if item is None:
            return self
        made = getattr(item, self.made)
        if made is None:
            made = _datetime(getattr(item, self.micros))
            setattr(item, self.made, made)
        return made

    def __set__(self, item: Any, value: datetime) -> None:
        setattr(item, self.made, value)


class _Value:
    """An item's ``value``, decoded from the stored bytes (slot ``_raw``) by ``_decode`` on
    first access and kept in slot ``_body``, so that a read returns before it decodes."""

    def __get__(self, item: Any, owner: Any = None) -> Any:
        if item is None:
            return self
        raw = item._raw
        if raw is not None:
            item._body = item._decode(raw)
            item._raw = None
        return item._body

    def __set__(self, item: Any, value: Any) -> None:
        item._body = value
        item._raw = None


class StoredItem(Item):
    """An ``Item`` whose ``value`` is decoded, and whose ``created_at``/``updated_at`` are made
    from the stored microseconds, on first access (a MISS need not decode a value nor build two
    datetimes nobody may read); otherwise an Item. The descriptors shadow ``Item``'s slots,
    which stay unused."""

    __slots__ = ("_body", "_raw", "_decode", "_created_us", "_updated_us", "_created", "_updated")

    value = _Value()  # type: ignore[assignment]
    created_at = _Timestamp("_created_us", "_created")  # type: ignore[assignment]
    updated_at = _Timestamp("_updated_us", "_updated")  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled and copied as the plain Item it stands for (its value decoded): the
        # undecoded value holds the store's decoder, which does not pickle.
        return (plain_item, (self.value, self.key, self.namespace, self.created_at, self.updated_at))


def plain_item(
    value: Any, key: str, namespace: tuple[str, ...], created_at: datetime, updated_at: datetime
) -> Item:
    return Item(
        value=value, key=key, namespace=namespace, created_at=created_at, updated_at=updated_at
    )


def stored_item(
    doc: Doc, namespace: tuple[str, ...], codec: Codec, created: datetime | None = None
) -> StoredItem:
    """The Item of a stored version, its attributes set directly (what ``Item.__init__``
    stores after normalising), its value decoded on first access. ``created``:
    ``created_at`` if already made."""
    item = StoredItem.__new__(StoredItem)
    kind = doc[KIND]
    if kind == VALUE:
        item._body, item._raw = doc[BODY], None
    else:
        item._raw, item._decode = doc[BODY], codec.decoders[kind]
    item.key = doc[KEY]
    item.namespace = namespace
    item._created_us = doc[CREATED]
    item._updated_us = doc[UPDATED]
    item._created = created
    item._updated = None
    return item

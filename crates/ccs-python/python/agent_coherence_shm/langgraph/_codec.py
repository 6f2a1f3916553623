"""The bytes of one store item in the segment: a msgpack envelope around the value.

Values are encoded with LangGraph's own serializer, ``JsonPlusSerializer`` from
``langgraph.checkpoint.serde.jsonplus`` (the msgpack encoding LangGraph's checkpointers use):
datetimes, UUIDs, decimals, sets, enums, dataclasses and pydantic models come back as they were
written, NaN and infinities stay floats, and every process decodes the same bytes to the same
value. One addition: a plain ``tuple`` (which LangGraph's msgpack writes as a list) is written
as an extension type of its own and comes back a tuple, so values round-trip exactly.

Envelope (a msgpack array)::

    [FORMAT, namespace labels, key, writer, created_us, updated_us, ns_order, item_order,
     value bytes, vectors, value kind]

``created_us``/``updated_us`` are microseconds since the Unix epoch (UTC); ``ns_order`` and
``item_order`` are the nanosecond stamps search orders by (insertion order, as
``InMemoryStore``); ``vectors`` is ``None`` or the item's embeddings, little-endian ``f32``.
The value is msgpack of its own inside the envelope (a ``bin``), so that the envelope decodes
without the value: a read decodes the value on first access of ``Doc.value`` (or the item's
``value``). Its kind: ``PLAIN`` (no extension type inside: decoded without LangGraph's
extension hook), ``EXT`` (LangGraph's extension types, decoded with its hook), or ``TYPED``
(a serializer other than ``JsonPlusSerializer``: ``[type, bytes]`` from its ``dumps_typed``).
"""

from __future__ import annotations

from typing import Any, Callable

import ormsgpack
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from agent_coherence_shm._native import CoherenceError

try:  # the encoder's default hook of LangGraph's msgpack format
    from langgraph.checkpoint.serde.jsonplus import _msgpack_default
except ImportError:  # pragma: no cover - a LangGraph that moved it: use dumps_typed
    _msgpack_default = None

FORMAT = 2
#: Extension type code of a plain tuple (LangGraph's own codes are 0-7).
EXT_TUPLE = 64
#: Value kinds (the envelope's last slot).
PLAIN, EXT, TYPED = 0, 1, 2
_OPTIONS = (
    ormsgpack.OPT_NON_STR_KEYS
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
)
_packb = ormsgpack.packb
_unpackb = ormsgpack.unpackb
_NON_STR_KEYS = ormsgpack.OPT_NON_STR_KEYS


#: Slots of a ``Doc``, the decoded envelope: a list in envelope order (a list, not a named
#: tuple, because a read builds one per MISS and a named tuple costs several times as much).
NAMESPACE, KEY, WRITER, CREATED, UPDATED, NS_ORDER, ITEM_ORDER, BODY, VECTORS, KIND = range(1, 11)
#: A decoded item: ``[FORMAT, namespace (a tuple), key, writer, created_us, updated_us,
#: ns_order, item_order, body, vectors, kind]``: ``body`` is the value's bytes as stored, of
#: kind ``PLAIN``, ``EXT`` or ``TYPED``, or (kind ``VALUE``, an item this process wrote) the
#: value itself. ``Codec.decoders[kind]`` decodes a body.
Doc = list
#: The kind of a Doc whose body is the value itself.
VALUE = -1


def _default(obj: Any) -> Any:
    if type(obj) is tuple:
        return ormsgpack.Ext(EXT_TUPLE, _packb(list(obj), default=_default, option=_OPTIONS))
    return _msgpack_default(obj)  # type: ignore[misc]


class Codec:
    """Encodes and decodes items with ``serde`` (default: a ``JsonPlusSerializer``)."""

    def __init__(self, serde: Any = None) -> None:
        self.serde = serde if serde is not None else JsonPlusSerializer()
        inline = isinstance(self.serde, JsonPlusSerializer) and _msgpack_default is not None
        self._inline = inline
        outer = getattr(self.serde, "_unpack_ext_hook", None) if inline else None
        if inline and outer is None:  # pragma: no cover - a LangGraph without the hook
            self._inline = False

        def hook(code: int, data: bytes) -> Any:
            if code == EXT_TUPLE:
                return tuple(_unpackb(data, ext_hook=hook, option=_NON_STR_KEYS))
            return outer(code, data)  # type: ignore[misc]

        def plain(raw: bytes) -> Any:
            try:
                return _unpackb(raw, option=_NON_STR_KEYS)
            except ormsgpack.MsgpackDecodeError as error:
                raise _undecodable(error) from None

        def extended(raw: bytes) -> Any:
            try:
                return _unpackb(raw, ext_hook=hook, option=_NON_STR_KEYS)
            except (ormsgpack.MsgpackDecodeError, ValueError, TypeError) as error:
                raise _undecodable(error) from None

        def typed(raw: bytes) -> Any:
            try:
                kind, data = _unpackb(raw)
                return self.serde.loads_typed((kind, data))
            except (ormsgpack.MsgpackDecodeError, ValueError, TypeError) as error:
                raise _undecodable(error) from None

        #: The function that decodes a body of each kind (``PLAIN``, ``EXT``, ``TYPED``):
        #: bytes to the value; ``CoherenceError`` if they do not decode.
        self.decoders: tuple[Callable[[bytes], Any], ...] = (plain, extended, typed)

    def encode(self, doc: Doc) -> bytes:
        """The bytes of the item ``doc`` (of kind ``VALUE``: its body is the value itself)."""
        value = doc[BODY]
        if self._inline:
            try:  # a plain value (no type LangGraph writes as an extension) in one pass
                raw, kind = _packb(value, option=_OPTIONS), PLAIN
            except TypeError:
                raw, kind = _packb(value, default=_default, option=_OPTIONS), EXT
        else:
            raw, kind = _packb(list(self.serde.dumps_typed(value))), TYPED
        envelope = doc.copy()
        envelope[NAMESPACE] = list(doc[NAMESPACE])
        envelope[BODY] = raw
        envelope[KIND] = kind
        return _packb(envelope)


    def decode(self, data: bytes) -> Doc:
        """The item in ``data``, its value left undecoded (``value()`` decodes it);
        ``ValueError`` if it is not an item of this format."""
        try:
            doc = _unpackb(data)
        except ormsgpack.MsgpackDecodeError as error:
            raise ValueError(f"not a ShmStore item ({error})") from None
        if (
            type(doc) is not list
            or len(doc) != 11
            or doc[0] != FORMAT
            or type(doc[BODY]) is not bytes
            or doc[KIND] not in (PLAIN, EXT, TYPED)
        ):
            raise ValueError(f"not a ShmStore item of format {FORMAT}")
        doc[NAMESPACE] = tuple(doc[NAMESPACE])
        return doc


def _undecodable(error: Exception) -> CoherenceError:
    return CoherenceError(f"a stored value does not decode: {error}")

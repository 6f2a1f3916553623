"""The bytes of one store item in the segment: a msgpack envelope around the value.

Values are encoded with LangGraph's own serializer, ``JsonPlusSerializer`` from
``langgraph.checkpoint.serde.jsonplus`` (the msgpack encoding LangGraph's checkpointers use):
datetimes, UUIDs, decimals, sets, enums, dataclasses and pydantic models come back as they were
written, NaN and infinities stay floats, and every process decodes the same bytes to the same
value. One addition: a plain ``tuple`` (which LangGraph's msgpack writes as a list) is written
as an extension type of its own and comes back a tuple, so values round-trip exactly.

Envelope (a msgpack array)::

    [FORMAT, namespace labels, key, writer, created_us, updated_us, ns_order, item_order,
     value, vectors]

``created_us``/``updated_us`` are microseconds since the Unix epoch (UTC); ``ns_order`` and
``item_order`` are the nanosecond stamps search orders by (insertion order, as
``InMemoryStore``); ``vectors`` is ``None`` or the item's embeddings, little-endian ``f32``.
With a serializer other than ``JsonPlusSerializer`` the value slot holds
``[type, bytes]`` from its ``dumps_typed`` instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ormsgpack
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

try:  # the encoder's default hook of LangGraph's msgpack format
    from langgraph.checkpoint.serde.jsonplus import _msgpack_default
except ImportError:  # pragma: no cover - a LangGraph that moved it: use dumps_typed
    _msgpack_default = None

FORMAT = 1
#: Extension type code of a plain tuple (LangGraph's own codes are 0-7).
EXT_TUPLE = 64
_OPTIONS = (
    ormsgpack.OPT_NON_STR_KEYS
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
)


class Doc(NamedTuple):
    """A decoded item (its fields in envelope order, after the format)."""

    format: int
    namespace: tuple[str, ...]
    key: str
    writer: str
    created_us: int
    updated_us: int
    ns_order: int
    item_order: int
    value: Any
    vectors: bytes | None


#: A Doc from its fields in order (``Doc._make``: no keyword handling).
make_doc = Doc._make


def _default(obj: Any) -> Any:
    if type(obj) is tuple:
        return ormsgpack.Ext(
            EXT_TUPLE, ormsgpack.packb(list(obj), default=_default, option=_OPTIONS)
        )
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
                return tuple(
                    ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
                )
            return outer(code, data)  # type: ignore[misc]

        self._hook = hook

    def encode(
        self,
        namespace: tuple[str, ...],
        key: str,
        writer: str,
        created_us: int,
        updated_us: int,
        ns_order: int,
        item_order: int,
        value: Any,
        vectors: bytes | None,
    ) -> bytes:
        if not self._inline:
            value = list(self.serde.dumps_typed(value))
        return ormsgpack.packb(
            [
                FORMAT,
                list(namespace),
                key,
                writer,
                created_us,
                updated_us,
                ns_order,
                item_order,
                value,
                vectors,
            ],
            default=_default,
            option=_OPTIONS,
        )

    def decode(self, data: bytes) -> Doc:
        """The item in ``data``; ``ValueError`` if it is not an item of this format."""
        try:
            doc = ormsgpack.unpackb(data, ext_hook=self._hook, option=ormsgpack.OPT_NON_STR_KEYS)
        except ormsgpack.MsgpackDecodeError as error:
            raise ValueError(f"not a ShmStore item ({error})") from None
        if type(doc) is not list or len(doc) != 10 or doc[0] != FORMAT:
            raise ValueError("not a ShmStore item of format 1")
        doc[1] = tuple(doc[1])
        if not self._inline:
            doc[8] = self.serde.loads_typed((doc[8][0], doc[8][1]))
        return make_doc(doc)

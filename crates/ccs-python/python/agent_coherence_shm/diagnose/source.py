"""Reading a node function's source: which state channels and store items it reads and writes.

The analysis walks the function's syntax tree (``ast``), never runs it:

- the state is the first parameter; ``state["k"]``, ``state.get("k")``, ``state.k`` and
  ``"k" in state`` read channel ``k``;
- a returned dict literal (or ``Command(update={...})``, or a name bound to a dict literal and
  filled with ``out["k"] = ...``) writes its constant keys;
- the store is a parameter named ``store`` (or annotated ``BaseStore``), ``runtime.store``,
  ``config["store"]`` or a name bound to ``get_store()``; ``get``/``search`` read and
  ``put``/``delete`` write (``a``-prefixed async forms too). A namespace element or key that
  is not a literal, a local bound to one, a module constant or a closure variable is ``*`` (a
  namespace that is not even a tuple literal is ``**``, any number of elements);
- a call to one of the user's own plain functions (not the standard library's, an installed
  package's or a method) is followed, up to `MAX_DEPTH` calls deep, with the state and store
  bound to the parameters they are passed as: its reads and store writes are the node's, and
  its returned dict is the node's write when the node returns the call's result;
- a path function's targets are its returned string constants and ``Send("node", ...)``; a
  ``Send`` or a returned list is a fan-out.

What the source does not show (the state handed whole to a helper, a store reached another
way) is what the dynamic run (``--input``) is for.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import sysconfig
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

from agent_coherence_shm.diagnose.model import Site

#: How deep calls into the user's own functions are followed from a node.
MAX_DEPTH = 3

_STORE_READS = {"get", "aget", "search", "asearch"}
_STORE_WRITES = {"put", "aput", "delete", "adelete"}


_LIBRARY_DIRS = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
)


def is_user_code(path: str) -> bool:
    """Whether ``path`` is the user's code: not the standard library, not an installed
    package, not this package."""
    return not path.startswith("<") and not os.path.realpath(path).startswith(_LIBRARY_DIRS)


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def unwrap(func: Any) -> Any:
    """The plain function behind partials and decorators."""
    while True:
        if isinstance(func, functools.partial):
            func = func.func
        elif hasattr(func, "__wrapped__"):
            func = func.__wrapped__
        else:
            return func


@dataclass
class Accesses:
    """What one function's source reads and writes, with sites."""

    reads: dict[str, Site] = field(default_factory=dict)
    writes: dict[str, Site] = field(default_factory=dict)
    #: Path functions: the nodes it can route to, and whether it can start several at once.
    targets: list[str] = field(default_factory=list)
    fanout: bool = False
    #: Whether it routes with ``Send`` (a target can run as several instances).
    sends: bool = False
    #: ``Command(goto=...)`` targets found in a node.
    gotos: list[str] = field(default_factory=list)
    file: str | None = None
    line: int | None = None
    notes: list[str] = field(default_factory=list)


def _parse(func: Callable[..., Any]) -> tuple[ast.AST, str, int] | None:
    try:
        lines, first = inspect.getsourcelines(func)
        file = inspect.getsourcefile(func) or "<unknown>"
    except (OSError, TypeError):
        return None
    src = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return None
    return tree, display_path(file), first - 1


class _Visitor(ast.NodeVisitor):
    def __init__(
        self, node: str, file: str, offset: int, state: str | None, globals_: dict[str, Any]
    ):
        self.node, self.file, self.offset, self.state = node, file, offset, state
        self.globals = globals_
        self.out = Accesses()
        self.store_names: set[str] = {"store"}
        self.locals: dict[str, Any] = {}
        self.dict_names: set[str] = set()
        self.depth = 0
        self.seen: set[Any] = set()
        self.returned_calls: set[int] = set()

    # -- helpers ---------------------------------------------------------------------------

    def site(self, n: ast.AST) -> Site:
        return Site(self.node, self.file, getattr(n, "lineno", 1) + self.offset)

    def read(self, artifact: str, n: ast.AST) -> None:
        self.out.reads.setdefault(artifact, self.site(n))

    def write(self, artifact: str, n: ast.AST) -> None:
        self.out.writes.setdefault(artifact, self.site(n))

    def const(self, n: ast.AST | None) -> Any:
        """The value of a literal, a local bound to one, or a module constant; else None."""
        if n is None:
            return None
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            if n.id in self.locals:
                return self.locals[n.id]
            value = self.globals.get(n.id)
            if isinstance(value, tuple) and not all(isinstance(v, str) for v in value):
                return None
            return value if isinstance(value, (str, tuple)) else None
        if isinstance(n, (ast.Tuple, ast.List)):
            return tuple(self.const(e) for e in n.elts)
        return None

    def store_artifact(self, ns: ast.AST | None, key: ast.AST | None, search: bool) -> str:
        value = self.const(ns)
        if isinstance(value, tuple):
            parts = [v if isinstance(v, str) else "*" for v in value]
        elif isinstance(value, str):
            parts = [value]
        else:
            parts = ["**"]  # not even its length is known
        if search:
            parts.append("*")
        else:
            k = self.const(key)
            parts.append(k if isinstance(k, str) else "*")
        return "store:" + "/".join(parts)

    def is_state(self, n: ast.AST) -> bool:
        return self.state is not None and isinstance(n, ast.Name) and n.id == self.state

    def is_store(self, n: ast.AST) -> bool:
        if isinstance(n, ast.Name):
            return n.id in self.store_names
        if isinstance(n, ast.Attribute) and n.attr == "store":
            return True
        if isinstance(n, ast.Subscript) and self.const(n.slice) == "store":
            return True
        if isinstance(n, ast.Call) and _call_name(n) == "get_store":
            return True
        return False

    def dict_writes(self, d: ast.AST) -> None:
        if isinstance(d, ast.Dict):
            for k in d.keys:
                key = self.const(k) if k is not None else None
                if isinstance(key, str):
                    self.write(f"state:{key}", k)  # type: ignore[arg-type]
        elif isinstance(d, ast.Call) and _call_name(d) == "dict":
            for kw in d.keywords:
                if kw.arg:
                    self.write(f"state:{kw.arg}", d)

    # -- visitors --------------------------------------------------------------------------

    def visit_Assign(self, n: ast.Assign) -> None:
        for target in n.targets:
            if isinstance(target, ast.Name):
                value = self.const(n.value)
                if value is not None:
                    self.locals[target.id] = value
                if isinstance(n.value, ast.Call) and _call_name(n.value) == "get_store":
                    self.store_names.add(target.id)
                if isinstance(n.value, ast.Dict):
                    self.dict_names.add(target.id)
                    self.dict_writes(n.value)
            elif (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id in self.dict_names
            ):
                key = self.const(target.slice)
                if isinstance(key, str):
                    self.write(f"state:{key}", target)
        self.generic_visit(n)

    def visit_Subscript(self, n: ast.Subscript) -> None:
        if self.is_state(n.value) and isinstance(n.ctx, ast.Load):
            key = self.const(n.slice)
            if isinstance(key, str):
                self.read(f"state:{key}", n)
        self.generic_visit(n)

    def visit_Attribute(self, n: ast.Attribute) -> None:
        if self.is_state(n.value) and isinstance(n.ctx, ast.Load) and not n.attr.startswith("_"):
            if n.attr not in ("get", "items", "keys", "values", "copy", "model_dump"):
                self.read(f"state:{n.attr}", n)
        self.generic_visit(n)

    def visit_Compare(self, n: ast.Compare) -> None:
        for op, right in zip(n.ops, n.comparators):
            if isinstance(op, (ast.In, ast.NotIn)) and self.is_state(right):
                key = self.const(n.left)
                if isinstance(key, str):
                    self.read(f"state:{key}", n)
        self.generic_visit(n)

    def visit_Call(self, n: ast.Call) -> None:
        func = n.func
        name = _call_name(n)
        if isinstance(func, ast.Attribute):
            if self.is_state(func.value) and func.attr == "get" and n.args:
                key = self.const(n.args[0])
                if isinstance(key, str):
                    self.read(f"state:{key}", n)
            elif self.is_store(func.value) and func.attr in _STORE_READS | _STORE_WRITES:
                args = list(n.args) + [None, None]
                kw = {k.arg: k.value for k in n.keywords if k.arg}
                ns = kw.get("namespace") or kw.get("namespace_prefix") or args[0]
                key = kw.get("key") or args[1]
                search = func.attr in ("search", "asearch")
                artifact = self.store_artifact(ns, key, search)
                if func.attr in _STORE_READS:
                    self.read(artifact, n)
                else:
                    self.write(artifact, n)
        if isinstance(func, ast.Name):
            self.follow(n, self.globals.get(func.id))
        if name == "Send" and n.args:
            target = self.const(n.args[0])
            if isinstance(target, str):
                self.out.targets.append(target)
                self.out.fanout = self.out.sends = True
        if name == "Command":
            for kw in n.keywords:
                if kw.arg == "update":
                    self.dict_writes(kw.value)
                if kw.arg == "goto":
                    goto = self.const(kw.value)
                    for g in goto if isinstance(goto, tuple) else (goto,):
                        if isinstance(g, str):
                            self.out.gotos.append(g)
        self.generic_visit(n)

    def follow(self, n: ast.Call, target: Any) -> None:
        """Analyse a call into one of the user's own functions with the caller's state and
        store bound to the parameters they are passed as; its state writes count only when
        the caller returns the call's result."""
        target = unwrap(target)
        if (
            not inspect.isfunction(target)
            or self.depth >= MAX_DEPTH
            or target.__code__ in self.seen
            or not is_user_code(target.__code__.co_filename)
        ):
            return
        try:
            params = list(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            return
        bound: list[tuple[str, ast.AST]] = list(zip(params, n.args))
        bound += [(k.arg, k.value) for k in n.keywords if k.arg in params]
        state = next((p for p, arg in bound if self.is_state(arg)), None)
        stores = {p for p, arg in bound if self.is_store(arg)}
        sub = _analyse(self.node, target, state, stores, self.depth + 1, self.seen)
        for artifact, site in sub.reads.items():
            self.out.reads.setdefault(artifact, site)
        for artifact, site in sub.writes.items():
            if artifact.startswith("store:") or id(n) in self.returned_calls:
                self.out.writes.setdefault(artifact, site)

    def visit_Return(self, n: ast.Return) -> None:
        value = n.value
        if isinstance(value, ast.Call):
            self.returned_calls.add(id(value))
        if value is not None:
            self.dict_writes(value)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                self.out.targets.append(value.value)
            if isinstance(value, (ast.List, ast.ListComp)):
                self.out.fanout = True
                for e in value.elts if isinstance(value, ast.List) else []:
                    target = self.const(e)
                    if isinstance(target, str):
                        self.out.targets.append(target)
            if isinstance(value, ast.IfExp):
                for branch in (value.body, value.orelse):
                    target = self.const(branch)
                    if isinstance(target, str):
                        self.out.targets.append(target)
        self.generic_visit(n)

    # Nested functions and lambdas are part of the node's code: they are visited too.


def _names(func: Any) -> dict[str, Any]:
    """The module globals and closure variables ``func`` sees (a node made by a factory reads
    the channel names it was made with from its closure)."""
    names = dict(getattr(func, "__globals__", {}))
    try:
        names.update(inspect.getclosurevars(func).nonlocals)
    except (TypeError, ValueError):
        pass
    return names


def _call_name(n: ast.Call) -> str | None:
    if isinstance(n.func, ast.Name):
        return n.func.id
    if isinstance(n.func, ast.Attribute):
        return n.func.attr
    return None


def analyse(node: str, func: Any) -> Accesses:
    """What the source of ``func`` (the code of node ``node``) reads and writes, following
    calls into the user's own plain functions (see `MAX_DEPTH`)."""
    return _analyse(node, func, None, set(), 0, set())


def _analyse(
    node: str,
    func: Any,
    state: str | None,
    store_params: set[str],
    depth: int,
    seen: set[Any],
) -> Accesses:
    """``state``/``store_params``: the callee's parameters bound to the caller's state and
    store when ``func`` is a helper called from a node (``depth`` > 0)."""
    func = unwrap(func)
    call = getattr(func, "__call__", None)
    if not inspect.isfunction(func) and not inspect.ismethod(func) and call is not None:
        func = call  # a callable object: its __call__
    seen.add(getattr(func, "__code__", func))
    parsed = _parse(func)
    if parsed is None:
        out = Accesses()
        out.notes.append(f"the source of {getattr(func, '__qualname__', func)!r} is unavailable")
        return out
    tree, file, offset = parsed
    fn = next(
        (
            t
            for t in ast.walk(tree)
            if isinstance(t, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        ),
        None,
    )
    store_params = set(store_params)
    if fn is not None:
        if depth == 0:
            params = [a for a in fn.args.posonlyargs + fn.args.args if a.arg not in ("self", "cls")]
            state = params[0].arg if params else None
        for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
            annotation = ast.unparse(a.annotation) if a.annotation is not None else ""
            if a.arg == "store" or "BaseStore" in annotation:
                store_params.add(a.arg)
    visitor = _Visitor(node, file, offset, state, _names(func))
    visitor.store_names |= store_params
    visitor.depth, visitor.seen = depth, seen
    visitor.visit(tree)
    if isinstance(fn, ast.Lambda):  # a lambda's body is its return value
        visitor.dict_writes(fn.body)
    out = visitor.out
    out.file = file
    out.line = offset + (getattr(fn, "lineno", 1) if fn is not None else 1)
    out.targets = list(dict.fromkeys(out.targets))
    out.gotos = list(dict.fromkeys(out.gotos))
    return out

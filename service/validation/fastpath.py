"""A fast path for the FHIRPath invariants of our profiles: the few expression shapes they use, compiled into
Python closures over the plain JSON, with fhirpathpy as the reference for everything else.

`compile_fast(expression, base, model, resolve)` returns None for any expression using something outside the supported
shapes (those are always left to fhirpathpy). A compiled closure evaluates only data it fully understands: plain
strings and objects where the expression navigates, strings where it compares. On anything else (numbers,
booleans or null in the data, primitive extensions `_x`, nested lists, non-singletons where a singleton is
needed) it raises `Fallback`, and the caller evaluates the same invariant with fhirpathpy. Within that domain
each step mirrors what fhirpathpy 2.2 does, including its quirks (`=` compares only first items, `where` keeps an
item when the criterion's first result is true, `|` and `isDistinct` compare data). tests/validation/
test_fastpath.py checks both give identical results for every invariant over every example and random mutations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhirpathpy.engine.invocations import logic
from fhirpathpy.parser import parse as _untyped_parse

Fast = Callable[[list[Any], dict[str, Any]], list[Any]]
_parse: Callable[[str], dict[str, Any]] = _untyped_parse  # fhirpathpy's parser (untyped): expression -> tree
Resolve = Callable[[list[Any]], list[Any]]


class Fallback(Exception):  # noqa: N818 - a signal, not an error: "let fhirpathpy evaluate this"
    """The data is outside what the compiled closure handles exactly like fhirpathpy."""


class Unsupported(Exception):  # noqa: N818 - raised only while compiling
    pass


# Paths whose values fhirpathpy converts (dates, times) or treats specially (Quantity): never on the fast path.
_SPECIAL_TYPES = frozenset({"date", "dateTime", "time", "instant", "Quantity"})
_INT = re.compile(r"^[+-]?\d+$")
_IDENTIFIER = re.compile(r"[a-z][A-Za-z0-9]*", re.ASCII)


@dataclass(frozen=True)
class _Shape:
    fn: Fast
    paths: frozenset[str | None]  # fhirpathpy's type paths of the items (None: untyped)
    nodes: bool  # whether fhirpathpy holds the items as ResourceNodes (navigation) rather than raw values


class _Compiler:
    def __init__(self, model: dict[str, Any], resolve: Resolve) -> None:
        self._model = model
        self._resolve = resolve

    # --- expressions -------------------------------------------------------------------------------------------
    def expression(self, node: dict[str, Any], focus: _Shape, this_ok: bool = False) -> _Shape:  # noqa: PLR0911
        kind = node.get("type")
        children: list[dict[str, Any]] = node.get("children") or []
        if kind == "TermExpression":
            return self.term(children[0], focus, this_ok)
        if kind == "InvocationExpression":
            left = self.expression(children[0], focus)
            return self.invocation(children[1], left)
        if kind in ("AndExpression", "OrExpression", "ImpliesExpression"):
            return self.logical(kind, children, focus)
        if kind == "EqualityExpression":
            return self.equality(node["terminalNodeText"][0], children, focus)
        if kind == "UnionExpression":
            return self.union(children, focus)
        if kind == "MembershipExpression":
            return self.membership(node["terminalNodeText"][0], children, focus)
        if kind in ("MultiplicativeExpression", "AdditiveExpression"):
            return self.arithmetic(node["terminalNodeText"][0], children, focus)
        raise Unsupported(kind)

    def term(self, node: dict[str, Any], focus: _Shape, this_ok: bool) -> _Shape:
        kind = node.get("type")
        children: list[dict[str, Any]] = node.get("children") or []
        if kind == "InvocationTerm":
            inner = children[0]
            if inner.get("type") == "ThisInvocation":
                if not this_ok:  # fhirpathpy's $this is only the focus as the direct operand of an operator
                    raise Unsupported("$this")
                return focus
            return self.invocation(inner, focus)
        if kind == "ParenthesizedTerm":
            return self.expression(children[0], focus, this_ok)
        if kind == "LiteralTerm":
            return _literal(children[0])
        if kind == "ExternalConstantTerm":
            name = children[0]["children"][0].get("text")
            if name != "resource":
                raise Unsupported(f"%{name}")

            def resource(data: list[Any], env: dict[str, Any]) -> list[Any]:
                value = env["resource"]
                if not isinstance(value, dict):
                    raise Fallback
                return [value]

            return _Shape(resource, frozenset({None}), nodes=False)
        raise Unsupported(kind)

    def invocation(self, node: dict[str, Any], left: _Shape) -> _Shape:
        kind = node.get("type")
        if kind == "MemberInvocation":
            return self.member(node["children"][0].get("text") or "", left)
        if kind == "FunctionInvocation":
            functn = node["children"][0]
            parts: list[dict[str, Any]] = functn.get("children") or []
            name = parts[0].get("text")
            params: list[dict[str, Any]] = parts[1].get("children") or [] if len(parts) > 1 else []
            return self.function(str(name), params, left)
        raise Unsupported(kind)

    # --- navigation ----------------------------------------------------------------------------------------------
    def member(self, key: str, left: _Shape) -> _Shape:
        if not _IDENTIFIER.fullmatch(key):
            raise Unsupported(key)  # capitals filter by resourceType in fhirpathpy; quotes are not handled here
        paths = frozenset(self._child_path(path, key) for path in left.paths)
        inner = left.fn
        underscored = "_" + key

        def member(data: list[Any], env: dict[str, Any]) -> list[Any]:
            found: list[Any] = []
            for item in inner(data, env):
                if type(item) is not dict or underscored in item:
                    raise Fallback
                value = item.get(key)
                if value is None:
                    continue
                if type(value) is list:
                    for element in value:
                        if type(element) is not str and type(element) is not dict:
                            raise Fallback
                    found.extend(value)
                elif type(value) is str or type(value) is dict:
                    found.append(value)
                else:
                    raise Fallback
            return found

        return _Shape(member, paths, nodes=True)

    def _child_path(self, path: str | None, key: str) -> str:
        """The type path fhirpathpy gives a child (create_reduce_member_invocation), checked for special cases."""
        child = f"{path}.{key}" if path else f"_.{key}"
        child = self._model["pathsDefinedElsewhere"].get(child, child)
        if child in self._model["choiceTypePaths"]:
            raise Unsupported(f"choice element {child}")
        if key == "extension":
            child = "Extension"
        child = self._model["path2Type"].get(child, child)
        if child in _SPECIAL_TYPES:
            raise Unsupported(f"{child} element")
        return str(child)

    # --- functions -----------------------------------------------------------------------------------------------
    def function(self, name: str, params: list[dict[str, Any]], left: _Shape) -> _Shape:  # noqa: PLR0911
        inner = left.fn
        if name in ("exists", "empty") and not params:
            wanted = name == "exists"

            def existence(data: list[Any], env: dict[str, Any]) -> list[Any]:
                return [bool(inner(data, env)) is wanted]

            return _Shape(existence, frozenset({None}), nodes=False)
        if name == "where" and len(params) == 1:
            return self.where(params[0], left)
        if name == "resolve" and not params:
            resolve = self._resolve

            def resolved(data: list[Any], env: dict[str, Any]) -> list[Any]:
                return resolve(inner(data, env))

            return _Shape(resolved, frozenset({None}), nodes=False)
        if name == "isDistinct" and not params:
            if not left.nodes:
                raise Unsupported("isDistinct of values")

            def distinct(data: list[Any], env: dict[str, Any]) -> list[Any]:
                items = _strings(inner(data, env))
                return [len(items) == len(set(items))]

            return _Shape(distinct, frozenset({None}), nodes=False)
        if name == "length" and not params:

            def length(data: list[Any], env: dict[str, Any]) -> list[Any]:
                items = inner(data, env)
                return [len(_string(items))] if items else []

            return _Shape(length, frozenset({None}), nodes=False)
        if name == "matches" and len(params) == 1:
            return self.matches(params[0], left)
        if name == "substring" and len(params) == 2:
            start, count = (_int_literal(param) for param in params)

            def substring(data: list[Any], env: dict[str, Any]) -> list[Any]:
                items = inner(data, env)
                if not items:
                    return []
                text = _string(items)
                if start < 0 or start >= len(text):
                    return []
                return [text[start : start + count]]

            return _Shape(substring, frozenset({None}), nodes=False)
        if name == "toInteger" and not params:

            def to_integer(data: list[Any], env: dict[str, Any]) -> list[Any]:
                items = inner(data, env)
                if len(items) != 1:
                    return []
                value = items[0]
                if type(value) is not str or _INT.match(value) is None:
                    raise Fallback
                return [int(value)]

            return _Shape(to_integer, frozenset({None}), nodes=False)
        raise Unsupported(f"{name}()")

    def where(self, param: dict[str, Any], left: _Shape) -> _Shape:
        item_shape = _Shape(_identity, left.paths, left.nodes)
        criterion = self.expression(param, item_shape, this_ok=False).fn
        inner = left.fn

        def where(data: list[Any], env: dict[str, Any]) -> list[Any]:
            kept: list[Any] = []
            for item in inner(data, env):
                result = criterion([item], env)
                if result:
                    first = result[0]
                    if type(first) is not bool:
                        raise Fallback
                    if first:
                        kept.append(item)
            return kept

        return _Shape(where, left.paths, left.nodes)

    def matches(self, param: dict[str, Any], left: _Shape) -> _Shape:
        pattern = _string_literal(param)
        if not pattern:
            raise Unsupported("empty regex")
        regex = re.compile(pattern, re.DOTALL)
        inner = left.fn

        def matches(data: list[Any], env: dict[str, Any]) -> list[Any]:
            items = inner(data, env)
            if not items:
                return []
            return [regex.search(_string(items)) is not None]

        return _Shape(matches, frozenset({None}), nodes=False)

    # --- operators -----------------------------------------------------------------------------------------------
    def logical(self, kind: str, children: list[dict[str, Any]], focus: _Shape) -> _Shape:
        left, right = (self.expression(child, focus, this_ok=True).fn for child in children)
        operator: Callable[[Any, Any, Any], Any] = {
            "AndExpression": logic.and_op,
            "OrExpression": logic.or_op,
            "ImpliesExpression": logic.implies_op,
        }[kind]

        def logical(data: list[Any], env: dict[str, Any]) -> list[Any]:
            result = operator(None, _boolean(left(data, env)), _boolean(right(data, env)))
            if result is True or result is False:
                return [result]
            if result == []:
                return []
            raise Fallback

        return _Shape(logical, frozenset({None}), nodes=False)

    def equality(self, operator: str, children: list[dict[str, Any]], focus: _Shape) -> _Shape:
        if operator not in ("=", "!="):
            raise Unsupported(operator)
        left, right = (self.expression(child, focus, this_ok=True).fn for child in children)
        negate = operator == "!="

        def equality(data: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(data, env), right(data, env)
            if not a or not b:
                return []
            if len(a) != len(b):
                return [negate]
            x, y = a[0], b[0]
            if not ((type(x) is str and type(y) is str) or (type(x) is int and type(y) is int)):
                raise Fallback
            return [(x == y) is not negate]

        return _Shape(equality, frozenset({None}), nodes=False)

    def union(self, children: list[dict[str, Any]], focus: _Shape) -> _Shape:
        left, right = (self.expression(child, focus, this_ok=True) for child in children)
        if not (left.nodes and right.nodes):
            raise Unsupported("union of values")
        first, second = left.fn, right.fn

        def union(data: list[Any], env: dict[str, Any]) -> list[Any]:
            return list(dict.fromkeys(_strings(first(data, env) + second(data, env))))

        return _Shape(union, frozenset({None}), nodes=True)  # fhirpathpy's distinct drops the type paths

    def membership(self, operator: str, children: list[dict[str, Any]], focus: _Shape) -> _Shape:
        left, right = (self.expression(child, focus, this_ok=True).fn for child in children)
        is_in = operator == "in"

        def membership(data: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(data, env), right(data, env)
            collection, item = (b, a) if is_in else (a, b)
            if not item:
                return []
            if not collection:
                return [False]
            if len(item) > 1:
                raise Fallback
            return [_string(item) in _strings(collection)]

        return _Shape(membership, frozenset({None}), nodes=False)

    def arithmetic(self, operator: str, children: list[dict[str, Any]], focus: _Shape) -> _Shape:
        if operator not in ("*", "mod", "+", "-"):
            raise Unsupported(operator)
        left, right = (self.expression(child, focus, this_ok=True).fn for child in children)

        def arithmetic(data: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(data, env), right(data, env)
            if len(a) > 1 or len(b) > 1:
                raise Fallback
            if not a or not b:
                return []
            x, y = a[0], b[0]
            if type(x) is not int or type(y) is not int:
                raise Fallback
            if operator == "*":
                return [x * y]
            if operator == "+":
                return [x + y]
            if operator == "-":
                return [x - y]
            return [] if y == 0 else [x % y]

        return _Shape(arithmetic, frozenset({None}), nodes=False)


def _identity(data: list[Any], env: dict[str, Any]) -> list[Any]:
    return data


def _literal(node: dict[str, Any]) -> _Shape:
    kind = node.get("type")
    value: Any
    if kind == "StringLiteral":
        value = _unquote(str(node["text"]))
    elif kind == "NumberLiteral":
        number = Decimal(str(node["text"]))
        if number != int(number):
            raise Unsupported("decimal literal")
        value = int(number)
    elif kind == "BooleanLiteral":
        value = node["text"] == "true"
    else:
        raise Unsupported(str(kind))
    constant = [value]

    def literal(data: list[Any], env: dict[str, Any]) -> list[Any]:
        return list(constant)

    return _Shape(literal, frozenset({None}), nodes=False)


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" in body:
        raise Unsupported("escapes in a string literal")
    return body


def _literal_node(param: dict[str, Any], kind: str) -> dict[str, Any]:
    term = param
    if term.get("type") == "TermExpression":
        term = term["children"][0]
    if term.get("type") == "LiteralTerm":
        term = term["children"][0]
    if term.get("type") != kind:
        raise Unsupported(f"a {kind} argument is needed")
    return term


def _string_literal(param: dict[str, Any]) -> str:
    return _unquote(str(_literal_node(param, "StringLiteral")["text"]))


def _int_literal(param: dict[str, Any]) -> int:
    text = str(_literal_node(param, "NumberLiteral")["text"])
    if not text.isdigit():
        raise Unsupported("an integer argument is needed")
    return int(text)


def _string(items: list[Any]) -> str:
    """fhirpathpy's ensure_string_singleton: exactly one string (anything else makes it raise)."""
    if len(items) != 1 or type(items[0]) is not str:
        raise Fallback
    return str(items[0])


def _strings(items: list[Any]) -> list[str]:
    for item in items:
        if type(item) is not str:
            raise Fallback
    return items


def _boolean(items: list[Any]) -> Any:
    """fhirpathpy's [Boolean] parameter: empty stays empty; one boolean; anything else makes it raise."""
    if not items:
        return []
    if len(items) != 1 or type(items[0]) is not bool:
        raise Fallback
    return items[0]


def compile_fast(expression: str, base: str, model: dict[str, Any], resolve: Resolve) -> Fast | None:
    """The closure for `expression` evaluated on an element of type path `base`, or None if any part of it is
    outside the supported shapes. The closure takes ([element], {"resource": resource}) and returns the result
    collection, or raises Fallback."""
    try:
        tree = _parse(expression)
        root = _Shape(_root, frozenset({base}), nodes=True)
        return _Compiler(model, resolve).expression(tree["children"][0], root).fn
    except (Unsupported, KeyError, IndexError, TypeError, ValueError):
        return None


def _root(data: list[Any], env: dict[str, Any]) -> list[Any]:
    if type(data[0]) is not dict:
        raise Fallback
    return data

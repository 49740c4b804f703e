"""FHIRPath invariants: compiled once when the profiles load, evaluated safely against untrusted data.

fhirpathpy evaluates the expressions. It offers no `resolve()` for Bundle references, so one is registered here:
it follows a Reference to the entry (or contained resource) it names, through whatever resolver the validator
has installed for the message being checked (`resolving_with`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from service.validation.fastpath import Fallback, Fast, compile_fast

Resolver = Callable[[dict[str, Any]], dict[str, Any] | None]
_resolver: ContextVar[Resolver | None] = ContextVar("handover_fhirpath_resolver", default=None)
_MODEL: dict[str, Any] = models["r4"]
_create_node: Callable[..., Any] = ResourceNode.create_node  # untyped in fhirpathpy: wraps a value with its type path


def _resolve(inputs: list[Any]) -> list[Any]:
    resolver = _resolver.get()
    found: list[Any] = []
    for item in inputs:
        if resolver is not None and isinstance(item, dict):
            target = resolver(item)
            if target is not None:
                found.append(target)
    return found


_OPTIONS: dict[str, Any] = {"userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}}}


@contextmanager
def resolving_with(resolver: Resolver) -> Iterator[None]:
    """Within the block, FHIRPath `resolve()` follows references with `resolver`."""
    token = _resolver.set(resolver)
    try:
        yield
    finally:
        _resolver.reset(token)


class _RaiseOnSyntaxError(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, *args: object) -> None:  # noqa: N802 - the ANTLR listener's method name
        raise ValueError("FHIRPath syntax error")


def check_syntax(expression: str) -> None:
    """Raise ValueError unless `expression` is one whole FHIRPath expression. fhirpathpy's own parser recovers
    from syntax errors silently, so the grammar is run here with a listener that refuses them."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_RaiseOnSyntaxError())
    parser: Any = FHIRPathParser(CommonTokenStream(lexer))  # generated ANTLR code, untyped
    parser.removeErrorListeners()
    parser.addErrorListener(_RaiseOnSyntaxError())
    parser.entireExpression()


class InvariantError(Exception):
    """An invariant could not be evaluated on this data (its shape is not what the expression expects)."""


@dataclass(frozen=True)
class Invariant:
    """A StructureDefinition constraint: `key`, `severity` (error | warning), plain-English `human`, and the
    FHIRPath `expression`, compiled for elements of type `base` (a resource, data type or element path).

    Evaluation takes the fast path (service/validation/fastpath.py) when the expression compiled to it and the
    data is within what it handles; otherwise, and always when `fast` is None, fhirpathpy evaluates it."""

    key: str
    severity: str
    human: str
    expression: str
    base: str
    _compiled: Callable[..., list[Any]]
    fast: Fast | None = field(default=None, compare=False)

    @classmethod
    def compile(cls, key: str, severity: str, human: str, expression: str, base: str) -> Invariant:
        """Compile `expression`; raises ValueError if it is not valid FHIRPath (a fault in the profiles)."""
        try:
            check_syntax(expression)
            compiled = fhirpathpy.compile(expression, _MODEL, _OPTIONS)
        except Exception as exc:  # the FHIRPath parser raises bare Exceptions for syntax errors
            raise ValueError(f"invariant {key}: the expression is not valid FHIRPath") from exc
        fast = compile_fast(expression, base, _MODEL, _resolve)
        return cls(key, "warning" if severity == "warning" else "error", human, expression, base, compiled, fast)

    def holds(self, value: Any, resource: Any) -> bool:
        """True when the invariant evaluates to exactly `true` on `value` (an element of `resource`).

        Raises InvariantError when the evaluator fails on this data. fhirpathpy signals such failures with bare
        Exceptions whose messages quote the data, so they are caught here, at the library's boundary, and never
        passed on.
        """
        if self.fast is not None:
            try:
                return self.fast([value], {"resource": resource}) == [True]
            except Fallback:
                pass  # outside the fast path's domain: fhirpathpy decides
            except Exception:  # noqa: BLE001, S110 - never expected (see test_fastpath.py); fhirpathpy decides
                pass
        return self.holds_by_fhirpathpy(value, resource)

    def holds_by_fhirpathpy(self, value: Any, resource: Any) -> bool:
        """`holds`, always evaluated by fhirpathpy (the reference the fast path is tested against)."""
        node = _create_node(value, self.base)
        try:
            result = self._compiled(node, {"resource": resource, "rootResource": resource})
        except Exception:  # noqa: BLE001 - third-party evaluator boundary: any fault on odd data is a failed check
            raise InvariantError(self.key) from None
        return result == [True]

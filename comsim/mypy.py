"""comsim's mypy plugin: interface methods declared with ``...`` bodies are declarations, not
functions that forget to return.

Enable it in your mypy configuration::

    [tool.mypy]
    plugins = ["comsim.mypy"]

Then ``class ICalc(comsim.Interface): async def Add(self, a: int, b: int) -> int: ...`` passes
``mypy --strict``: no ``empty-body`` error for the declarations of an interface.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import NOT_ABSTRACT, Decorator, FuncDef, OverloadedFuncDef
from mypy.plugin import ClassDefContext, Plugin
from mypy.semanal import is_trivial_body

INTERFACE = "comsim._runtime.objects.Interface"


def _declarations_are_abstract(ctx: ClassDefContext) -> None:
    """In an interface class (not a CoClass, a proxy or a call object: those implement it),
    every method whose body is only ``...`` (or ``pass``, or a docstring) is a declaration."""
    info = ctx.cls.info
    if any(base.fullname != INTERFACE and not _is_interface(base)
           for base in info.mro[1:] if base.fullname != "builtins.object"):
        return
    for stmt in ctx.cls.defs.body:
        func = stmt.func if isinstance(stmt, Decorator) else stmt
        if isinstance(func, OverloadedFuncDef):
            continue
        if (isinstance(func, FuncDef) and func.abstract_status == NOT_ABSTRACT
                and is_trivial_body(func.body)):
            node = info.names.get(func.name)
            if node is not None:
                # mypy checks no body of a method a plugin stands for: comsim stands for these
                # (proxies, call objects and CoClasses implement them); the interface stays
                # concrete, so ``unmarshal_interface(stream, ICalc)`` types as ``ICalc``
                node.plugin_generated = True


def _is_interface(info: object) -> bool:
    mro = getattr(info, "mro", [])
    return any(getattr(b, "fullname", "") == INTERFACE for b in mro)


class ComsimPlugin(Plugin):
    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        if fullname == INTERFACE:
            return _declarations_are_abstract
        return None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return ComsimPlugin

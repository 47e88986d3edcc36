"""The filter language: a safe subset of PostgreSQL boolean expressions, compiled to sqlglot trees.

Generic: it knows nothing of collections or records. Names are resolved through a `Resolver` the
caller supplies; values become bound parameters through a `ParamSink`. Imports only sqlglot.
"""

from baas.query.compile import (
    Hop,
    Kind,
    ParamSink,
    Resolved,
    Resolver,
    compile_filter,
    compile_value,
)
from baas.query.errors import FilterError, NameProblem
from baas.query.limits import QueryLimits
from baas.query.parse import parse_filter

__all__ = [
    "FilterError",
    "Hop",
    "Kind",
    "NameProblem",
    "ParamSink",
    "QueryLimits",
    "Resolved",
    "Resolver",
    "compile_filter",
    "compile_value",
    "parse_filter",
]

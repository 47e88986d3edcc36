"""Text -> sqlglot tree, with every named limit checked before and while parsing.

sqlglot alone accepts `a > 1; DROP TABLE x` (as two statements), comments, and overflows its
recursion at about 60 nested parentheses, so the text is screened and tokenized first: control
characters, comments, `;` and deep nesting are refused before the parser ever runs.
"""

from __future__ import annotations

from sqlglot import Token, TokenType, exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError

from baas.query.errors import FilterError
from baas.query.limits import QueryLimits


class _Dialect(Postgres):
    class Parser(Postgres.Parser):  # type: ignore[valid-type,misc]
        # contains(list, a, b, ...) is ours, with any number of values; sqlglot would read it as
        # its own CONTAINS(x, y[, scope]) and drop the rest.
        FUNCTIONS = {k: v for k, v in Postgres.Parser.FUNCTIONS.items() if k != "CONTAINS"}


_DIALECT = _Dialect()
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET}


def parse_filter(text: str, limits: QueryLimits) -> exp.Expression:
    """One boolean expression, or FilterError saying what and where."""
    if len(text) > limits.max_length:
        raise FilterError(f"the expression is longer than {limits.max_length} characters")
    _screen_characters(text)
    tokens = _tokens(text, limits)
    if not tokens:
        if text.strip():
            raise FilterError("comments are not allowed", (1, 1))
        raise FilterError("the expression is empty")
    try:
        parsed = _DIALECT.parser().parse(tokens, text)
    except ParseError as exc:
        raise _parse_error(exc) from None
    except RecursionError:
        raise FilterError("the expression is nested too deeply") from None
    statements = [p for p in parsed if p is not None]
    if len(statements) != 1:
        raise FilterError("the expression must be a single condition")
    tree = statements[0]
    assert isinstance(tree, exp.Expression)
    tree.meta["source"] = text  # to place errors on nodes sqlglot gives no position
    if sum(1 for _ in tree.walk()) > limits.max_nodes:
        raise FilterError(f"the expression has more than {limits.max_nodes} parts")
    return tree


def _screen_characters(text: str) -> None:
    for offset, char in enumerate(text):
        code = ord(char)
        if (code < 32 and char not in "\t\n\r") or 0xD800 <= code <= 0xDFFF or code == 0x7F:
            line = text.count("\n", 0, offset) + 1
            column = offset - (text.rfind("\n", 0, offset) + 1) + 1
            raise FilterError(f"control character U+{code:04X} is not allowed", (line, column))


def _tokens(text: str, limits: QueryLimits) -> list[Token]:
    try:
        tokens = _DIALECT.tokenize(text)
    except TokenError:
        raise FilterError(
            "the expression cannot be read: is a quote left open?", _last_quote(text)
        ) from None
    depth = 0
    for token in tokens:
        where = (token.line, max(token.col - (token.end - token.start), 1))
        if token.comments:
            raise FilterError("comments are not allowed", where)
        if token.token_type == TokenType.SEMICOLON:
            raise FilterError("';' is not allowed: the expression is a single condition", where)
        if token.token_type in _OPEN:
            depth += 1
            if depth > limits.max_depth:
                raise FilterError(f"parentheses nest deeper than {limits.max_depth} levels", where)
        elif token.token_type in _CLOSE:
            depth -= 1
    return tokens


def _last_quote(text: str) -> tuple[int, int] | None:
    offset = max(text.rfind("'"), text.rfind('"'))
    if offset < 0:
        return None
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _parse_error(exc: ParseError) -> FilterError:
    first = exc.errors[0] if exc.errors else {}
    line, column = first.get("line"), first.get("col")
    description = str(first.get("description") or _first_line(exc))
    if "<class" in description or "Required keyword" in description:
        description = "this is not a valid expression"
    highlight = first.get("highlight")
    if highlight:
        description += f" near {str(highlight)[:40]!r}"
    return FilterError(description, (int(line), int(column)) if line and column else None)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__

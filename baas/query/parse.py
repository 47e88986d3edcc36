"""Text -> sqlglot tree, with every named limit checked before and while parsing.

sqlglot alone accepts `a > 1; DROP TABLE x` (as two statements), comments, and overflows its
recursion at about 60 nested parentheses, so the text is screened and tokenized first: control
characters, comments, `;`, deep nesting and every token the language has no use for (other
string syntaxes, operators such as `~`, `||`, `->`, `%`) are refused, in the client's own words
and at their place, before the parser ever runs. The parser's own complaints are reworded too:
sqlglot names its classes and functions, which the client never wrote.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import Token, TokenType, exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError

from baas.query.errors import CALLED, FilterError, position_at
from baas.query.limits import QueryLimits


class _Dialect(Postgres):
    class Parser(Postgres.Parser):  # type: ignore[valid-type,misc]
        # contains(list, a, b, ...) is ours, with any number of values; sqlglot would read it as
        # its own CONTAINS(x, y[, scope]) and drop the rest.
        FUNCTIONS = {k: v for k, v in Postgres.Parser.FUNCTIONS.items() if k != "CONTAINS"}

        def _parse_function_call(self, *args: Any, **kwargs: Any) -> exp.Expression | None:
            # Where the call's name is, as the client wrote it: sqlglot records it for plain
            # calls only (not for CASE, EXISTS, EXTRACT, ...), and names the rest its own way
            # (version() is its CURRENT_VERSION), so a refusal quotes the client's text instead.
            token = self._curr
            call = super()._parse_function_call(*args, **kwargs)
            if isinstance(call, exp.Expression) and token is not None:
                call.meta.setdefault(CALLED, (token.start, token.end))
            return call  # type: ignore[no-any-return]

        def _parse_as_command(self, start: Token) -> exp.Command:
            # sqlglot's fallback for syntax it does not know: an opaque command, and a warning
            # in the log for every such filter a client sends. Ours: a parse error.
            self.raise_error(_UNKNOWN_SYNTAX, start)
            raise AssertionError("raise_error raises at once")  # pragma: no cover


_UNKNOWN_SYNTAX = "syntax sqlglot does not know"
_DIALECT = _Dialect()
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET}

_STRING = "use a plain '...' string with the characters themselves ('' for a quote)"
_JSON = "reach into a json field with a dotted path such as meta.color"
_VALUE = "write the value itself"
# Tokens the language has no use for, and what to say instead ({} is the client's text).
_REFUSED: dict[TokenType, str] = {
    TokenType.HEREDOC_STRING: f"dollar-quoted strings ($$...$$) are not supported: {_STRING}",
    TokenType.BYTE_STRING: f"E'...' escape strings are not supported: {_STRING}",
    TokenType.UNICODE_STRING: f"U&'...' unicode escape strings are not supported: {_STRING}",
    TokenType.NATIONAL_STRING: f"N'...' strings are not supported: {_STRING}",
    TokenType.BIT_STRING: "B'...' bit strings are not supported: write a number or a '...' string",
    TokenType.HEX_STRING: "hexadecimal {} is not supported: write the number in decimal or the "
    "text in a '...' string",
    TokenType.RLIKE: "the {} operator (regular expression) is not supported: use LIKE or ILIKE",
    TokenType.IRLIKE: "the {} operator (regular expression) is not supported: use LIKE or ILIKE",
    TokenType.GLOB: "the {} operator is not supported: use LIKE or ILIKE",
    TokenType.DPIPE: "'||' (concatenation) is not supported: compare with the whole text, or "
    "match a part of it with LIKE",
    TokenType.ARROW: f"the json operator '{{}}' is not supported: {_JSON}",
    TokenType.DARROW: f"the json operator '{{}}' is not supported: {_JSON}",
    TokenType.HASH_ARROW: f"the json operator '{{}}' is not supported: {_JSON}",
    TokenType.DHASH_ARROW: f"the json operator '{{}}' is not supported: {_JSON}",
    TokenType.HASH_DASH: f"the json operator '{{}}' is not supported: {_JSON}",
    TokenType.QMARK_PIPE: "the json operator '{}' is not supported: test a key with a dotted "
    "path such as meta.color IS NOT NULL",
    TokenType.QMARK_AMP: "the json operator '{}' is not supported: test a key with a dotted "
    "path such as meta.color IS NOT NULL",
    TokenType.AT_QMARK: f"the json path operator '{{}}' is not supported: {_JSON}",
    TokenType.PLACEHOLDER: f"'?' placeholders are not supported: {_VALUE} (to test a json key, "
    "write meta.color IS NOT NULL)",
    TokenType.PARAMETER: f"parameters such as '{{}}' are not supported: {_VALUE}",
    TokenType.DCOLON: "'::' casts are not allowed (only DATE '...' and TIMESTAMP '...'): compare "
    "the field with a value of its own type",
    TokenType.MOD: "unexpected '%': there is no remainder operator, and in a LIKE pattern the % "
    "goes inside the quotes (title LIKE 'a%')",
    TokenType.CARET: "'^' (power) is not supported: multiply instead",
    TokenType.AMP: "the bitwise operator '&' is not supported",
    TokenType.PIPE: "the bitwise operator '|' is not supported",
    TokenType.HASH: "the bitwise operator '#' is not supported",
    TokenType.TILDE: "the {} operator is not supported: use LIKE or ILIKE to match text",
    TokenType.PIPE_SLASH: "the root operator '{}' is not supported",
    TokenType.DPIPE_SLASH: "the root operator '{}' is not supported",
    TokenType.SIMILAR_TO: "SIMILAR TO is not supported: use LIKE or ILIKE",
    TokenType.COLLATE: "COLLATE is not supported: compare lower() of both sides, or use ILIKE",
    TokenType.DAT: "text search ('@@') is not supported in filters: lists take search= instead",
    TokenType.LT_AT: "'<@' is not supported: put the list field first, as in tags @> ARRAY['a']",
}
# Operators the language has ('!' is NOT, '~~' LIKE); any other run of symbols is refused.
_SYMBOLS = {
    TokenType.L_PAREN,
    TokenType.R_PAREN,
    TokenType.L_BRACKET,
    TokenType.R_BRACKET,
    TokenType.COMMA,
    TokenType.DOT,
    TokenType.EQ,
    TokenType.NEQ,
    TokenType.NULLSAFE_EQ,
    TokenType.LT,
    TokenType.LTE,
    TokenType.GT,
    TokenType.GTE,
    TokenType.PLUS,
    TokenType.DASH,
    TokenType.STAR,
    TokenType.SLASH,
    TokenType.AT_GT,
    TokenType.DAMP,
    TokenType.NOT,
    TokenType.LIKE,
    TokenType.ILIKE,
}
_OPERATORS = "=, <>, !=, <, <=, >, >=, +, -, *, /, @>, &&"
_QUOTED = {
    TokenType.STRING,
    TokenType.IDENTIFIER,
    TokenType.HEREDOC_STRING,
    TokenType.BYTE_STRING,
    TokenType.UNICODE_STRING,
    TokenType.NATIONAL_STRING,
    TokenType.BIT_STRING,
    TokenType.HEX_STRING,
}
_STATEMENTS = set(_DIALECT.parser_class.STATEMENT_PARSERS) | _DIALECT.tokenizer_class.COMMANDS
_ARGUMENTS = re.compile(r"provided arguments \((\d+)\) is greater than the maximum .*\((\d+)\)")


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
    _screen_statement(tokens[0], text)
    try:
        parsed = _DIALECT.parser().parse(tokens, text)
    except ParseError as exc:
        raise _parse_error(exc, tokens, text) from None
    except RecursionError:
        raise FilterError("the expression is nested too deeply") from None
    except (IndexError, KeyError, TypeError, ValueError):  # a function sqlglot cannot build
        raise FilterError(
            "this is not a valid expression: check the function calls and their arguments"
        ) from None
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
            raise FilterError(
                f"control character U+{code:04X} is not allowed", position_at(text, offset)
            )


def _tokens(text: str, limits: QueryLimits) -> list[Token]:
    try:
        tokens = _DIALECT.tokenize(text)
    except TokenError:
        raise FilterError(
            "the expression cannot be read: is a quote left open?", _last_quote(text)
        ) from None
    depth = 0
    for index, token in enumerate(tokens):
        where = position_at(text, token.start)
        if token.comments:
            raise FilterError("comments are not allowed", where)
        if token.token_type == TokenType.SEMICOLON:
            raise FilterError("';' is not allowed: the expression is a single condition", where)
        _screen_token(tokens, index, text)
        if token.token_type in _OPEN:
            depth += 1
            if depth > limits.max_depth:
                raise FilterError(f"parentheses nest deeper than {limits.max_depth} levels", where)
        elif token.token_type in _CLOSE:
            depth -= 1
    return tokens


def _screen_statement(first: Token, text: str) -> None:
    """Refuse a statement (SET, DROP, ...) before sqlglot parses it (and logs a warning)."""
    if first.token_type in _STATEMENTS:
        word = _written(first, text)
        raise FilterError(
            f"'{word[:40]}' starts a statement, and a filter is a condition such as views > 10 "
            f'(a field called {word.lower()} is written in double quotes: "{word.lower()}")',
            position_at(text, first.start),
        )


def _screen_token(tokens: list[Token], index: int, text: str) -> None:
    """Refuse a token the language has no use for, quoting it as the client wrote it."""
    refused = _refused_token(tokens, index, text)
    if refused is not None:
        raise FilterError(refused[1], position_at(text, refused[0]))


def _refused_token(tokens: list[Token], index: int, text: str) -> tuple[int, str] | None:
    """(where, why) if tokens[index] has no place in a filter."""
    token = tokens[index]
    kind = token.token_type
    start, written = token.start, _written(token, text)
    before = tokens[index - 1] if index and _joined(tokens[index - 1], token) else None
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    after = after if after is not None and _joined(token, after) else None
    if kind == TokenType.AMP and before is not None and before.text.lower() == "u":
        # U&"name" arrives as U, &, "name"
        return before.start, 'U&"..." unicode identifiers are not supported: write the name itself'
    if (
        kind in (TokenType.RLIKE, TokenType.IRLIKE)
        and before
        and before.token_type == TokenType.NOT
    ):
        start, written = before.start, "!" + written  # !~ arrives as NOT, ~
    if kind == TokenType.PARAMETER and after is not None and after.text[:1].isalnum():
        written += _written(after, text)  # $1, @name
    if kind == TokenType.COLON and after is not None and after.text[:1].isalpha():
        return start, f"placeholders such as ':{after.text[:40]}' are not supported: {_VALUE}"
    if kind in (TokenType.LT, TokenType.GT) and after is not None and after.token_type == kind:
        return start, f"the bitwise operator '{written * 2}' is not supported"
    if kind in _REFUSED:
        shown = _hex(written) if kind == TokenType.HEX_STRING else written
        return start, _REFUSED[kind].format(shown[:40])
    if kind not in _SYMBOLS | _QUOTED and not re.search(r"\w", written):
        return start, f"unexpected '{written[:40]}': the operators are {_OPERATORS}"
    return None


def _hex(written: str) -> str:
    return f"number {written}" if written[:2].lower() == "0x" else f"string {written}"


def _written(token: Token, text: str) -> str:
    return text[token.start : token.end + 1]


def _joined(first: Token, second: Token) -> bool:
    return first.end + 1 == second.start


def _last_quote(text: str) -> tuple[int, int] | None:
    offset = max(text.rfind("'"), text.rfind('"'))
    return position_at(text, offset) if offset >= 0 else None


def _parse_error(exc: ParseError, tokens: list[Token], text: str) -> FilterError:
    """sqlglot's complaint, said in terms of what the client wrote."""
    first = exc.errors[0] if exc.errors else {}
    description = str(first.get("description") or "")
    index = _token_index(tokens, first.get("line"), first.get("col"))
    if index is None:
        return FilterError("this is not a valid expression")
    token = tokens[index]
    near, where = _written(token, text)[:40], position_at(text, token.start)
    if description == _UNKNOWN_SYNTAX:
        return FilterError(
            f"'{near}' is not supported in a filter: a filter is a condition such as views > 10",
            where,
        )
    if description.startswith("Invalid expression / Unexpected token"):
        if token.token_type == TokenType.R_PAREN:
            return FilterError("unexpected ')': no '(' is open here", where)
        return FilterError(
            f"unexpected '{near}': a filter is one condition, such as views > 10; join "
            "conditions with AND or OR",
            where,
        )
    if description.startswith("Expecting )"):
        return FilterError(f"a ')' is missing after '{near}'", where)
    if description.startswith("Expected ]"):
        return FilterError(f"a ']' is missing after '{near}'", where)
    call = _call_name(tokens, index, text)
    arguments = _ARGUMENTS.search(description)
    if arguments and call:
        most = int(arguments[2])
        return FilterError(
            f"{call}() takes at most {most} argument{'s' if most != 1 else ''}, not {arguments[1]}",
            where,
        )
    if (
        description.startswith("Required keyword")
        and call
        and token.token_type == TokenType.R_PAREN
    ):
        return FilterError(f"{call}() is missing an argument", where)
    if description.startswith("Required keyword"):
        return FilterError(
            f"the expression is incomplete at '{near}': a name or value is missing", where
        )
    return FilterError(f"this is not a valid expression near '{near}'", where)


def _token_index(tokens: list[Token], line: Any, column: Any) -> int | None:
    """The token sqlglot's error points at (it gives the line and the column it ends at)."""
    for index, token in enumerate(tokens):
        if token.line == line and token.col == column:
            return index
    return None


def _call_name(tokens: list[Token], index: int, text: str) -> str | None:
    """The name of the function call whose parentheses hold tokens[index], as written."""
    depth = 0
    for back in range(index, -1, -1):
        kind = tokens[back].token_type
        if kind == TokenType.R_PAREN and back != index:
            depth += 1
        elif kind == TokenType.L_PAREN:
            if depth == 0:
                name = _written(tokens[back - 1], text) if back else ""
                return name if re.fullmatch(r"\w+", name) else None
            depth -= 1
    return None

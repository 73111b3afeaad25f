"""A SOQL subset, compiled to SQLite: enough for incremental extraction and simple lookups.

    SELECT f1, Parent.f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], …]
    [LIMIT n] [OFFSET n]

cond: comparisons (=, !=, <>, <, <=, >, >=, LIKE, IN (…), NOT IN (…)) joined by AND / OR, NOT and parentheses.
Literals: 'strings' (with \\n \\' \\\\ … escapes), numbers, true/false, null, dates (2026-01-01), datetimes
(2026-01-01T00:00:00Z), date literals TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n (UTC days).
Field and object names are case-insensitive, as in Salesforce; `Parent.Field` follows a lookup (AccountId).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from local_stack.sandbox.salesforce.schema import NUMBER_TYPES, FieldSpec, ObjectSpec, find_object


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<dateliteral>(?i:LAST_N_DAYS|NEXT_N_DAYS):\d+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "offset",
    "like",
    "in",
    "nulls",
    "first",
    "last",
    "true",
    "false",
    "null",
}
# Salesforce's string-literal escapes; any other backslash sequence is a malformed query.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def normalize_datetime(value: str) -> str:
    """Any ISO-8601 datetime (or date) -> Salesforce's UTC form 2026-03-01T12:00:00.000Z."""
    if (
        value[-1:] == "Z"
        and value[10:11] == "T"
        and (len(value) == 20 or (len(value) == 24 and value[19:20] == "."))
    ):
        datetime.fromisoformat(value)  # already Salesforce's form (or without milliseconds): validate only
        return value if len(value) == 24 else f"{value[:19]}.000Z"
    text = value.strip().replace(" ", "T", 1)
    if len(text) == 10:
        text += "T00:00:00Z"
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.replace("Z", "+00:00"))
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


@dataclass
class Token:
    kind: str
    text: str

    @property
    def keyword(self) -> str | None:
        return self.text.lower() if self.kind == "word" and self.text.lower() in _KEYWORDS else None


def tokenize(soql: str) -> list[Token]:
    tokens, pos = [], 0
    text = soql.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SoqlError(
                "MALFORMED_QUERY", f"unexpected character at position {pos}: {text[pos : pos + 20]!r}"
            )
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


@dataclass
class CompiledQuery:
    sobject: ObjectSpec
    fields: list[FieldSpec]
    """The selected fields; a parent's field is named by its path (`Account.Name`) as in Bulk CSV headers."""
    where_sql: str
    params: list[Any]
    order_sql: str
    limit: int | None
    offset: int
    columns: list[str] = field(default_factory=list)
    """SQL expressions of `fields`, in order."""
    parents: dict[str, ObjectSpec] = field(default_factory=dict)
    """Relationship name (Account) -> parent object, joined as alias `p_Account`; rows end with their Ids."""
    joins: list[str] = field(default_factory=list)
    count_only: bool = False
    """SELECT COUNT(): the answer is totalSize alone."""

    def sql(self, include_deleted: bool) -> tuple[str, list[Any]]:
        selected = [*self.columns, *(f'"p_{name}"."Id"' for name in self.parents)]
        if self.count_only:
            selected = ["COUNT(*)"]
        clauses = [] if include_deleted else ['t."IsDeleted" = 0']
        if self.where_sql:
            clauses.append(f"({self.where_sql})")
        sql = f'SELECT {", ".join(selected)} FROM "{self.sobject.table}" AS t {" ".join(self.joins)}'
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if self.count_only:
            return sql, list(self.params)
        sql += f" ORDER BY {self.order_sql}" if self.order_sql else ' ORDER BY t."Id"'
        if self.limit is not None or self.offset:
            sql += f" LIMIT {self.limit if self.limit is not None else -1} OFFSET {self.offset}"
        return sql, list(self.params)


class _Parser:
    def __init__(self, soql: str) -> None:
        self.tokens = tokenize(soql)
        self.pos = 0
        self.sobject: ObjectSpec | None = None
        self.params: list[Any] = []
        self.parents: dict[str, ObjectSpec] = {}
        self.joins: list[str] = []
        self.today = datetime.now(UTC).date()

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return token

    def accept(self, keyword: str) -> bool:
        token = self.peek()
        if token is not None and token.keyword == keyword:
            self.pos += 1
            return True
        return False

    def expect(self, keyword: str) -> None:
        if not self.accept(keyword):
            token = self.peek()
            raise SoqlError(
                "MALFORMED_QUERY", f"expected {keyword.upper()} at {token.text if token else 'end'!r}"
            )

    def field(self, name: str) -> FieldSpec:
        return self.resolve(name)[0]

    def resolve(self, name: str) -> tuple[FieldSpec, str]:
        """A field by name (`Name`, `Contact.Name` or a parent's `Account.Name`) and its SQL expression."""
        assert self.sobject is not None
        if name.lower().startswith(self.sobject.name.lower() + "."):
            name = name.split(".", 1)[1]
        if "." not in name:
            spec = self.sobject.field(name)
            if spec is None:
                raise _no_such_column(name, self.sobject.name)
            return spec, f't."{spec.name}"'
        relationship, _, rest = name.partition(".")
        lookup = next(
            (
                f
                for f in self.sobject.reference_fields
                if (f.relationship_name or "").lower() == relationship.lower()
            ),
            None,
        )
        # Polymorphic lookups (WhatId) need TYPEOF in Salesforce; the sandbox follows single-target ones only.
        parent = find_object(lookup.reference_to[0]) if lookup and len(lookup.reference_to) == 1 else None
        if lookup is None or parent is None or "." in rest:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{relationship}' in field path. If you are attempting to "
                "use a custom relationship, be sure to append the '__r' after the custom relationship name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            )
        spec = parent.field(rest)
        if spec is None:
            raise _no_such_column(rest, parent.name)
        label = f"{lookup.relationship_name}"
        if label not in self.parents:
            self.parents[label] = parent
            self.joins.append(
                f'LEFT JOIN "{parent.table}" AS "p_{label}" ON "p_{label}"."Id" = t."{lookup.name}"'
            )
        return replace(spec, name=f"{label}.{spec.name}"), f'"p_{label}"."{spec.name}"'

    def parse(self) -> CompiledQuery:
        self.expect("select")
        names = [self.next().text]
        count_only = names[0].lower() == "count" and self.peek() is not None and self.peek().text == "("
        if count_only and (self.next().text != "(" or self.next().text != ")"):
            raise SoqlError("MALFORMED_QUERY", "COUNT() takes no field here")
        while not count_only and self.peek() is not None and self.peek().text == ",":
            self.pos += 1
            names.append(self.next().text)
        self.expect("from")
        object_name = self.next().text
        self.sobject = find_object(object_name)
        if self.sobject is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{object_name}' is not supported.")
        resolved = [] if count_only else [self.resolve(n) for n in names]
        where_sql = self.condition() if self.accept("where") else ""
        order_sql = self.order_by() if self.accept("order") else ""
        limit = offset = None
        if self.accept("limit"):
            limit = self.integer("LIMIT")
        if self.accept("offset"):
            offset = self.integer("OFFSET")
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token {self.peek().text!r}")
        return CompiledQuery(
            self.sobject,
            [spec for spec, _ in resolved],
            where_sql,
            self.params,
            order_sql,
            limit,
            offset or 0,
            columns=[column for _, column in resolved],
            parents=self.parents,
            joins=self.joins,
            count_only=count_only,
        )

    def integer(self, clause: str) -> int:
        token = self.next()
        if token.kind != "number" or not token.text.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"{clause} needs a non-negative integer, got {token.text!r}")
        return int(token.text)

    def order_by(self) -> str:
        self.expect("by")
        parts = []
        while True:
            column = self.resolve(self.next().text)[1]
            direction = "DESC" if self.accept("desc") else "ASC"
            self.accept("asc")
            nulls = ""
            if self.accept("nulls"):
                nulls = (
                    " NULLS LAST" if self.accept("last") else (" NULLS FIRST" if self.accept("first") else "")
                )
            parts.append(f"{column} {direction}{nulls}")
            if self.peek() is not None and self.peek().text == ",":
                self.pos += 1
                continue
            return ", ".join(parts)

    def condition(self) -> str:
        sql = self.conjunction()
        while self.accept("or"):
            sql = f"{sql} OR {self.conjunction()}"
        return sql

    def conjunction(self) -> str:
        sql = self.term()
        while self.accept("and"):
            sql = f"{sql} AND {self.term()}"
        return sql

    def term(self) -> str:
        if self.accept("not"):
            return f"NOT ({self.term()})"
        token = self.peek()
        if token is not None and token.text == "(":
            self.pos += 1
            sql = self.condition()
            if self.next().text != ")":
                raise SoqlError("MALFORMED_QUERY", "missing closing parenthesis")
            return f"({sql})"
        return self.comparison()

    def comparison(self) -> str:
        spec, column = self.resolve(self.next().text)
        negate = self.accept("not")
        if self.accept("in"):
            if self.next().text != "(":
                raise SoqlError("MALFORMED_QUERY", "IN needs a parenthesised list")
            values = [self.literal(spec)]
            while self.peek() is not None and self.peek().text == ",":
                self.pos += 1
                values.append(self.literal(spec))
            if self.next().text != ")":
                raise SoqlError("MALFORMED_QUERY", "missing closing parenthesis after IN list")
            self.params.extend(values)
            return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join('?' * len(values))})"
        if negate:
            raise SoqlError("MALFORMED_QUERY", "NOT must be followed by IN here")
        if self.accept("like"):
            self.params.append(self.literal(spec, like=True))
            return f"{column} LIKE ? ESCAPE '\\'"
        op_token = self.next()
        if op_token.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"expected a comparison operator after {spec.name}")
        op = "!=" if op_token.text == "<>" else op_token.text
        day_range = self.date_literal(spec)
        if day_range is not None:
            return self.range_comparison(column, op, *day_range)
        value = self.literal(spec)
        if value is None:
            if op not in ("=", "!="):
                raise SoqlError("MALFORMED_QUERY", "null can only be compared with = or !=")
            return f"{column} IS {'NOT ' if op == '!=' else ''}NULL"
        self.params.append(value)
        return f"{column} {op} ?"

    def date_literal(self, spec: FieldSpec) -> tuple[str, str] | None:
        """A date literal next (TODAY, LAST_N_DAYS:7): its [start, end) on `spec`'s type; else None."""
        token = self.peek()
        if token is None or token.kind not in ("word", "dateliteral"):
            return None
        name, _, number = token.text.upper().partition(":")
        days = {"TODAY": (0, 1), "YESTERDAY": (-1, 0), "TOMORROW": (1, 2)}.get(name)
        if name == "LAST_N_DAYS":
            days = (-int(number), 1)  # Salesforce: today and the n days before it
        elif name == "NEXT_N_DAYS":
            days = (1, int(number) + 1)  # Salesforce: the n days after today, not today
        if days is None:
            return None
        self.pos += 1
        if spec.type not in ("date", "datetime"):
            raise _type_error(spec, spec.type)
        start, end = (self.today + timedelta(days=d) for d in days)
        return _bound(spec, start), _bound(spec, end)

    def range_comparison(self, column: str, op: str, start: str, end: str) -> str:
        """A field against a date literal: Salesforce compares with the literal's whole range of days."""
        sql = {
            "=": f"({column} >= ? AND {column} < ?)",
            "!=": f"({column} < ? OR {column} >= ?)",
            "<": f"{column} < ?",
            ">=": f"{column} >= ?",
            ">": f"{column} >= ?",
            "<=": f"{column} < ?",
        }[op]
        self.params.extend(
            {"=": [start, end], "!=": [start, end], "<": [start], ">=": [start]}.get(op, [end])
        )
        return sql

    def literal(self, spec: FieldSpec, like: bool = False) -> Any:
        token = self.next()
        keyword = token.keyword
        if keyword == "null":
            return None
        if spec.type == "boolean":
            if keyword not in ("true", "false"):
                raise _type_error(spec, "boolean")
            return 1 if keyword == "true" else 0
        if spec.type == "datetime":
            if token.kind != "datetime":  # Salesforce refuses a date value for a dateTime field
                raise _type_error(spec, "dateTime")
            return normalize_datetime(token.text)
        if spec.type == "date":
            if token.kind != "date":
                raise _type_error(spec, "date")
            return token.text
        if spec.type == "int" or spec.type in NUMBER_TYPES:
            if token.kind != "number":
                raise _type_error(spec, spec.type)
            return float(token.text)
        if token.kind != "string":
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{spec.name}' must be of type "
                f"{spec.type} and should be enclosed in quotes",
            )
        return _unescape(token.text[1:-1], like)


def _unescape(text: str, like: bool) -> str:
    """A string literal's value; in a LIKE pattern, \\% \\_ and \\\\ stay escaped for SQLite's ESCAPE '\\'."""

    def one(match: re.Match[str]) -> str:
        char = match.group(1)
        if like and char in "%_\\":
            return "\\" + char
        if char not in _ESCAPES:
            raise SoqlError(
                "MALFORMED_QUERY", f"Invalid string literal '{text}'. Illegal escape sequence '\\{char}'"
            )
        return _ESCAPES[char]

    return re.sub(r"\\(.)", one, text, flags=re.DOTALL)


def _bound(spec: FieldSpec, day: date) -> str:
    return day.isoformat() if spec.type == "date" else f"{day.isoformat()}T00:00:00.000Z"


def _no_such_column(name: str, sobject: str) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"No such column '{name}' on entity '{sobject}'. If you are attempting "
        "to use a custom field, be sure to append the '__c' after the custom field name.",
    )


def _type_error(spec: FieldSpec, type_name: str) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"value of filter criterion for field '{spec.name}' must be of type "
        f"{type_name} and should not be enclosed in quotes",
    )


def compile_soql(soql: str) -> CompiledQuery:
    return _Parser(soql).parse()

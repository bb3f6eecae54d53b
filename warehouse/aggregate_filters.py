"""How the report engine runs a KPI's filtered aggregates.

The catalog writes a KPI the way analysts read it, ``count(*) FILTER (WHERE
outcome = 'answered')``; the engine runs ``count(CASE WHEN (outcome =
'answered') THEN 1 END)``. Both give the same value on every input: an
aggregate skips NULLs, and a row whose predicate is false or NULL is exactly
a row FILTER leaves out and CASE turns into NULL (``count`` of no rows is 0 in
both forms, ``avg``/``sum``/``min``/``max``/quantiles of no rows NULL in both).
Why: DuckDB 2.0 evaluates each FILTER as its own selection pass, and with the
seven filtered aggregates of a service-level report that took about a
quarter more CPU than the CASE form (bench/warehouse.py, docs/performance.md).

Only aggregates in ``NULL_SKIPPING`` are rewritten; anything else, or SQL
this small scanner cannot follow (an unbalanced parenthesis, a FILTER inside
a FILTER), is returned unchanged, which is slower, never wrong.
"""

from __future__ import annotations

import re

# Aggregates whose value ignores NULL inputs, so that a NULL from CASE is the
# same as a row left out by FILTER.
NULL_SKIPPING = frozenset({"count", "sum", "avg", "min", "max", "median",
                           "quantile_cont", "quantile_disc"})

_FILTER = re.compile(r"FILTER\s*\(\s*WHERE\b", re.IGNORECASE)
_QUANTIFIER = re.compile(r"(DISTINCT|ALL)\b\s*", re.IGNORECASE)
# What the scanner does not follow: brackets (lists, structs), comments (a
# line comment would swallow what the rewrite appends) and an aggregate's
# own ORDER BY. Such an expression is left as written.
_UNFOLLOWED = re.compile(r"[\[\]{}]|--|/\*|\bORDER\s+BY\b", re.IGNORECASE)
_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _scan(sql: str) -> tuple[dict[int, int], list[tuple[int, int]]] | None:
    """Matching parentheses (open -> close) and the spans of string literals
    and quoted identifiers, or None when the parentheses do not balance."""
    match: dict[int, int] = {}
    quoted: list[tuple[int, int]] = []
    stack: list[int] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # a doubled quote is a quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                return None
            quoted.append((i, j))
            i = j + 1
            continue
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                return None
            match[stack.pop()] = i
        i += 1
    return (match, quoted) if not stack else None


def _split_args(text: str, base: int, match: dict[int, int],
                quoted: list[tuple[int, int]]) -> list[str]:
    """Top-level comma-separated arguments of a call (``text`` starts at
    offset ``base`` of the scanned SQL)."""
    args, start, i = [], 0, 0
    while i < len(text):
        at = base + i
        skip = next((q for q in quoted if q[0] == at), None)
        if skip is not None:
            i = skip[1] - base + 1
            continue
        if text[i] == "(":
            i = match[at] - base + 1
            continue
        if text[i] == ",":
            args.append(text[start:i])
            start = i + 1
        i += 1
    args.append(text[start:])
    return args


def filters_as_case(sql: str) -> str:
    """``agg(x) FILTER (WHERE p)`` -> ``agg(CASE WHEN (p) THEN x END)`` for
    the aggregates in ``NULL_SKIPPING``; everything else as written."""
    scanned = _scan(sql)
    if scanned is None:
        return sql
    match, quoted = scanned
    close_to_open = {c: o for o, c in match.items()}

    def in_quotes(pos: int) -> bool:
        return any(a <= pos <= b for a, b in quoted)

    edits: list[tuple[int, int, str]] = []
    for m in _FILTER.finditer(sql):
        if in_quotes(m.start()):
            continue
        call_close = len(sql[:m.start()].rstrip()) - 1
        if call_close < 0 or sql[call_close] != ")" or call_close not in close_to_open:
            continue
        call_open = close_to_open[call_close]
        name = _NAME.search(sql[:call_open])
        if name is None or name.group(1).lower() not in NULL_SKIPPING:
            continue
        filter_open = m.start() + m.group(0).index("(")
        filter_close = match[filter_open]
        predicate = sql[m.end():filter_close]
        inside = sql[call_open + 1:call_close]
        if _UNFOLLOWED.search(inside) or _UNFOLLOWED.search(predicate):
            continue  # brackets, comments or an ordered aggregate: as written
        args = _split_args(inside, call_open + 1, match, quoted)
        first = args[0].strip()
        quantifier = _QUANTIFIER.match(first)
        prefix = ""
        if quantifier:
            prefix, first = quantifier.group(1).upper() + " ", first[quantifier.end():].strip()
        if first == "*":
            if name.group(1).lower() != "count" or prefix:
                continue
            value = "1"
        else:
            value = f"({first})"
        rebuilt = ", ".join([f"{prefix}CASE WHEN ({predicate.strip()}) THEN {value} END",
                             *(a.strip() for a in args[1:])])
        edits.append((name.start(1), filter_close + 1,
                      f"{sql[name.start(1):call_open]}({rebuilt})"))
    # A FILTER inside another rewritten span: leave the whole expression alone.
    spans = sorted((a, b) for a, b, _ in edits)
    if any(b1 > a2 for (_, b1), (a2, _) in zip(spans, spans[1:])):
        return sql
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql

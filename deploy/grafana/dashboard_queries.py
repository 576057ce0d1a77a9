#!/usr/bin/env python3
"""Print the PromQL of every panel of a Grafana dashboard, with its variables filled in.

For tests that run each of the dashboard's queries against a real Prometheus, and for
checking them with promtool. As a command:

    python3 deploy/grafana/dashboard_queries.py [dashboard.json]
        [--instance RE] [--ring RE] [--pool RE] [--rate-interval 1m]
        [--as-rules] [--variables]

prints one expression per line (default dashboard: shmd.json next to this file; default
regexes ".*"). --as-rules prints a Prometheus rules file with one recording rule per
expression instead, so `promtool check rules` can check them all:

    python3 deploy/grafana/dashboard_queries.py --as-rules > /tmp/q.yml && promtool check rules /tmp/q.yml

--variables prints the series selectors of the label_values() template variables.

As a module:

    import dashboard_queries as dq
    for q in dq.queries("deploy/grafana/shmd.json", instance="localhost:9478"):
        print(q.panel, q.ref_id, q.expr)
    exprs = dq.expressions("deploy/grafana/shmd.json")   # just the strings

The regexes are RE2 as Prometheus takes them (e.g. 'localhost:9478' or 'orders|quotes');
every variable of this dashboard sits inside a PromQL double-quoted string, so they are
escaped for one (a backslash or a double quote in a regex is written once, as in the
regex itself). A variable the caller has no value for is an error, not a silent leftover.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterator

DEFAULT_DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shmd.json")

# $name, ${name} and ${name:format}, and the deprecated [[name]].
_VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


@dataclass(frozen=True)
class Query:
    panel: str  # the panel's title ("Row / Panel" inside a collapsed row)
    panel_id: int | None
    ref_id: str
    raw: str  # the expression as stored in the dashboard
    expr: str  # with the variables substituted, on one line


def load(path: str = DEFAULT_DASHBOARD) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def iter_panels(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (title, panel) for every panel, including those inside (collapsed) rows."""

    def walk(panels: list[dict[str, Any]], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for p in panels:
            title = prefix + p.get("title", "")
            yield title, p
            if p.get("panels"):  # a collapsed row keeps its panels inside itself
                yield from walk(p["panels"], title + " / ")

    yield from walk(dashboard.get("panels", []), "")


def _promql_string_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replaces the dashboard variables in `expr` and folds it onto one line.

    `variables` maps names (without "$") to values; values of names that do not start
    with "__" (template variables: regexes inside label matchers) are escaped for a PromQL
    double-quoted string, built-ins such as __rate_interval are inserted as they are.
    Raises KeyError for a variable without a value.
    """

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise KeyError(f"no value for dashboard variable ${name} in: {expr}")
        value = variables[name]
        return value if name.startswith("__") else _promql_string_escape(value)

    return " ".join(_VAR_RE.sub(repl, expr).split())


def default_variables(instance: str = ".*", ring: str = ".*", pool: str = ".*",
                      rate_interval: str = "1m") -> dict[str, str]:
    return {"instance": instance, "ring": ring, "pool": pool, "__rate_interval": rate_interval}


def queries(dashboard: str | dict[str, Any] = DEFAULT_DASHBOARD, instance: str = ".*",
            ring: str = ".*", pool: str = ".*", rate_interval: str = "1m",
            include_hidden: bool = True) -> list[Query]:
    """Every Prometheus target of every panel, in dashboard order."""
    d = load(dashboard) if isinstance(dashboard, str) else dashboard
    variables = default_variables(instance, ring, pool, rate_interval)
    out = []
    for title, panel in iter_panels(d):
        for t in panel.get("targets", []) or []:
            raw = t.get("expr")
            if not raw or (t.get("hide") and not include_hidden):
                continue
            out.append(Query(title, panel.get("id"), t.get("refId", ""), raw,
                             substitute(raw, variables)))
    return out


def expressions(dashboard: str | dict[str, Any] = DEFAULT_DASHBOARD, **kwargs: Any) -> list[str]:
    return [q.expr for q in queries(dashboard, **kwargs)]


_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$", re.S)


def variable_selectors(dashboard: str | dict[str, Any] = DEFAULT_DASHBOARD, instance: str = ".*",
                       ring: str = ".*", pool: str = ".*") -> list[tuple[str, str, str]]:
    """(variable, series selector, label) of each label_values(selector, label) variable."""
    d = load(dashboard) if isinstance(dashboard, str) else dashboard
    variables = default_variables(instance, ring, pool)
    out = []
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = _LABEL_VALUES_RE.match(q)
        if m:
            out.append((v["name"], substitute(m.group(1), variables), m.group(2)))
    return out


def as_rules(exprs: list[str], group: str = "dashboard_queries") -> str:
    """A rules file with one recording rule per expression (for `promtool check rules`)."""
    lines = ["groups:", f"  - name: {group}", "    rules:"]
    for i, e in enumerate(exprs):
        lines.append(f"      - record: dashboard:query_{i}")
        lines.append(f"        expr: {json.dumps(e)}")  # a JSON string is a YAML string
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboard", nargs="?", default=DEFAULT_DASHBOARD)
    ap.add_argument("--instance", default=".*", help='regex for $instance (default ".*")')
    ap.add_argument("--ring", default=".*", help='regex for $ring (default ".*")')
    ap.add_argument("--pool", default=".*", help='regex for $pool (default ".*")')
    ap.add_argument("--rate-interval", default="1m", help="value of $__rate_interval (default 1m)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--as-rules", action="store_true",
                      help="print a rules file with one recording rule per expression")
    mode.add_argument("--variables", action="store_true",
                      help="print the series selector and label of each label_values() variable")
    a = ap.parse_args(argv)
    try:
        if a.variables:
            for name, selector, label in variable_selectors(a.dashboard, a.instance, a.ring, a.pool):
                print(f"{name}\t{label}\t{selector}")
            return 0
        exprs = expressions(a.dashboard, instance=a.instance, ring=a.ring, pool=a.pool,
                            rate_interval=a.rate_interval)
    except (OSError, ValueError, KeyError) as e:
        print(f"dashboard_queries: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(as_rules(exprs) if a.as_rules else "".join(e + "\n" for e in exprs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

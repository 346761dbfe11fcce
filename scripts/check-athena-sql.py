#!/usr/bin/env python3
"""Parses each named query as Athena (engine 3, Trino's dialect) reads it: the emulator runs only
trivial queries, so this is where a query that DataFusion accepts but Athena would refuse fails.

Usage: check-athena-sql.py FILE.sql...   (scripts/test runs it on infra/queries/ with the pinned sqlglot)
"""
import sys

import sqlglot
from sqlglot.errors import ErrorLevel, ParseError


def main(paths):
    failed = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            sql = f.read()
        try:
            statements = sqlglot.parse(sql, read="trino", error_level=ErrorLevel.RAISE)
        except ParseError as error:
            print(f"{path}: not valid Trino SQL: {error}", file=sys.stderr)
            failed += 1
            continue
        if len([s for s in statements if s is not None]) != 1:
            print(f"{path}: a named query is one statement", file=sys.stderr)
            failed += 1
    if failed:
        sys.exit(f"check-athena-sql: {failed} of {len(paths)} queries refused")
    print(f"check-athena-sql: {len(paths)} queries parse as Trino (sqlglot {sqlglot.__version__})")


if __name__ == "__main__":
    main(sys.argv[1:])

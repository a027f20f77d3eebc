"""The Python loop benches/sql.rs measures tapline against: psycopg 3, the same keyset query
page by page, each row as the same JSON object tapline writes (timestamps RFC 3339 in UTC with
their microseconds, NUMERIC as exact text), a page appended to a JSON-lines file and fsynced.

Usage: sql_baseline.py CONNINFO TABLE PAGE_SIZE OUT
"""

import json
import os
import sys
from datetime import timezone

import psycopg


def timestamp(at):
    text = at.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


def main():
    conninfo, table, page_size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    query = (
        f"SELECT id, updated_at, name, value, amount, flag FROM {table} "
        "WHERE (updated_at, id) > (%s, %s) ORDER BY updated_at, id LIMIT %s"
    )
    cursor = ("1970-01-01T00:00:00Z", 0)
    total = 0
    with psycopg.connect(conninfo) as conn, open(out, "a", encoding="utf-8") as file:
        while True:
            rows = conn.execute(query, (*cursor, page_size)).fetchall()
            lines = []
            for id_, updated_at, name, value, amount, flag in rows:
                record = {
                    "amount": None if amount is None else str(amount),
                    "flag": flag,
                    "id": id_,
                    "name": name,
                    "updated_at": timestamp(updated_at),
                    "value": value,
                }
                lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            if lines:
                file.write("\n".join(lines) + "\n")
                file.flush()
                os.fdatasync(file.fileno())
                cursor = (rows[-1][1], rows[-1][0])
            total += len(rows)
            if len(rows) < page_size:
                break
    print(total)


if __name__ == "__main__":
    main()

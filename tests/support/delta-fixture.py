"""Writes a small Delta table with deltalake (delta-rs) for the reader's tests: two appends, so version 1.

    python tests/support/delta-fixture.py URI

Columns event_id (string), key (string), event_time (timestamp, UTC), date (date32) and hour (int32),
partitioned by date and hour. Version 0 holds e-0..e-5; version 1 appends e-6..e-9 and e-0 again (a
duplicate id), so version 1 has 11 rows and 10 distinct event ids over 3 partitions. Storage options come
from the environment, as for delta-reader.py. Prints {"uri", "version"}.
"""

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

spec = importlib.util.spec_from_file_location("delta_reader", Path(__file__).with_name("delta-reader.py"))
assert spec and spec.loader
reader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reader)

SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("key", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")),
    ("date", pa.date32()),
    ("hour", pa.int32()),
])


def batch(ids: list[int]) -> pa.Table:
    # e-0..e-3 at 2024-03-01 10:xx, e-4..e-7 at 2024-03-01 11:xx, e-8 and e-9 at 2024-03-02 00:xx.
    times = [dt.datetime(2024, 3, 1, 10, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=15 * i) if i < 8 else dt.datetime(2024, 3, 2, 0, i, tzinfo=dt.timezone.utc) for i in ids]
    return pa.table({
        "event_id": [f"e-{i}" for i in ids],
        "key": [f"device-{i % 3}" for i in ids],
        "event_time": times,
        "date": [t.date() for t in times],
        "hour": [t.hour for t in times],
    }, schema=SCHEMA)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: delta-fixture.py URI", file=sys.stderr)
        return 2
    uri = sys.argv[1]
    options = reader.storage_options(uri)
    try:
        write_deltalake(uri, batch([0, 1, 2, 3, 4, 5]), partition_by=["date", "hour"], mode="error", storage_options=options)
        write_deltalake(uri, batch([6, 7, 8, 9, 0]), partition_by=["date", "hour"], mode="append", storage_options=options)
        version = DeltaTable(uri, storage_options=options).version()
    except Exception as error:  # noqa: BLE001
        print(f"delta-fixture: {uri}: {type(error).__name__}: {reader.one_line(error)}", file=sys.stderr)
        return 1
    print(json.dumps({"uri": uri, "version": version}))
    return 0


if __name__ == "__main__":
    reader.exit_after(main())

"""Reads a Delta table with deltalake (delta-rs), an engine independent of devpipe's, and prints JSON.

    python tests/support/delta-reader.py URI [--version N] [--columns a,b] [--count-distinct COL ...]
                                             [--rows-by-partition]

URI is a local path or s3://bucket/prefix/table. Storage options (for s3://) come from the environment:
DELTA_STORAGE_OPTIONS, a JSON object of delta-rs options, else they are built from S3_ENDPOINT (or
AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, as in services.env. They are
never taken from the command line, which other users of the machine can read.

Prints {version, num_rows, distinct, schema, partition_columns, files, columns, rows_by_partition?}: `schema`
has each field's Delta type and the Arrow type that pyarrow reads it as; `columns` are the columns read (the
--columns projection plus what --count-distinct and --rows-by-partition need). On an error: a message on
stderr, exit 1 (2 for bad usage).
"""

import argparse
import json
import os
import re
import sys


def storage_options(uri: str) -> dict[str, str] | None:
    raw = os.environ.get("DELTA_STORAGE_OPTIONS")
    if raw:
        options = json.loads(raw)
        if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
            raise ValueError("DELTA_STORAGE_OPTIONS must be a JSON object of strings")
        return options
    if not uri.startswith("s3://"):
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT")
    options = {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = "true" if endpoint.startswith("http://") else "false"
    return options


def delta_type(t: object) -> str:
    # A primitive type names itself ("string", "date", "integer", "timestamp"); a nested one is its JSON.
    name = getattr(t, "type", None)
    return name if isinstance(name, str) else json.dumps(t.to_json() if hasattr(t, "to_json") else str(t))


def one_line(error: BaseException) -> str:
    """The error's message on one line, without the terminal colours delta-rs puts in its error chains."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split()) or repr(error)


def partition_key(columns: list[str], values: tuple[object, ...]) -> str:
    return "/".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}" for c, v in zip(columns, values))


def read(args: argparse.Namespace) -> dict[str, object]:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(args.uri, version=args.version, storage_options=storage_options(args.uri))
    partition_columns = list(table.metadata().partition_columns)
    dataset = table.to_pyarrow_dataset()
    arrow_types = {field.name: str(field.type) for field in dataset.schema}
    schema = [{"name": f.name, "type": delta_type(f.type), "arrow": arrow_types.get(f.name, "")} for f in table.schema().fields]

    wanted = [c.strip() for c in (args.columns or "").split(",") if c.strip()]
    wanted += args.count_distinct
    if args.rows_by_partition:
        wanted += partition_columns
    columns = list(dict.fromkeys(wanted))
    unknown = [c for c in columns if c not in arrow_types]
    if unknown:
        raise ValueError(f"no column {', '.join(unknown)} in the table (it has {', '.join(arrow_types)})")

    if columns:
        data = table.to_pyarrow_table(columns=columns)
        num_rows = data.num_rows
    else:
        data = None
        num_rows = dataset.count_rows()
    result: dict[str, object] = {
        "version": table.version(),
        "num_rows": num_rows,
        "distinct": {c: pc.count_distinct(data.column(c), mode="all").as_py() for c in args.count_distinct if data is not None},
        "schema": schema,
        "partition_columns": partition_columns,
        "files": len(table.file_uris()),
        "columns": columns,
    }
    if args.rows_by_partition:
        if data is not None and partition_columns:
            counts = data.group_by(partition_columns).aggregate([([], "count_all")])
            keys = zip(*(counts.column(c).to_pylist() for c in partition_columns))
            result["rows_by_partition"] = dict(sorted((partition_key(partition_columns, k), n) for k, n in zip(keys, counts.column("count_all").to_pylist())))
        else:
            result["rows_by_partition"] = {"": num_rows}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="delta-reader", description="Read a Delta table with delta-rs and print JSON.")
    parser.add_argument("uri", help="a local path or s3://bucket/prefix")
    parser.add_argument("--version", type=int, help="the table version to read (time travel); default the latest")
    parser.add_argument("--columns", help="comma-separated columns to read (a projection)")
    parser.add_argument("--count-distinct", action="append", default=[], metavar="COL", help="count COL's distinct values (repeatable)")
    parser.add_argument("--rows-by-partition", action="store_true", help="count the rows of each partition")
    args = parser.parse_args()
    try:
        result = read(args)
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way: one line, exit 1
        at = "" if args.version is None else f"@v{args.version}"
        print(f"delta-reader: {args.uri}{at}: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


def exit_after(code: int) -> None:
    """Exits without interpreter teardown: delta-rs's and Arrow's native threads can abort it
    ("terminate called without an active exception") after the work is done and printed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_after(main())

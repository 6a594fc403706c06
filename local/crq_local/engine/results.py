"""Writing a query's result rows: CSV or Parquet objects in S3, CSV files for member receivers.

Key layout (the real service's shape as far as it is documented; see docs/engine.md):
`<keyPrefix>/<queryId>/result/result.<ext>` for one file, `.../result/part-0000N.<ext>` for
several; `result.output.s3.location` is `s3://<bucket>/<keyPrefix>/<queryId>/`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# With singleFileOutput false, rows are spread over up to this many part files (Spark writes
# one file per partition; the engine imitates a small cluster).
MAX_PARTS = 4
CONTENT_TYPES = {"CSV": "text/csv", "PARQUET": "application/vnd.apache.parquet"}


@dataclass(frozen=True, slots=True)
class S3Written:
    location: str
    keys: tuple[str, ...]


def encode(table: pa.Table, result_format: str) -> bytes:
    sink = io.BytesIO()
    if result_format == "PARQUET":
        pq.write_table(table, sink)
    else:
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=True))
    return sink.getvalue()


def split(table: pa.Table, single: bool) -> list[pa.Table]:
    if single or table.num_rows < 2:
        return [table]
    parts = min(MAX_PARTS, table.num_rows)
    size = -(-table.num_rows // parts)  # ceiling division
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]


def write_s3(s3: Any, table: pa.Table, query_id: str, output: dict[str, Any]) -> S3Written:
    """Write to the `ProtectedQueryS3OutputConfiguration` `output`; raises on an S3 error."""
    bucket, result_format = output["bucket"], output["resultFormat"]
    prefix = output.get("keyPrefix", "").strip("/")
    folder = f"{prefix}/{query_id}/" if prefix else f"{query_id}/"
    ext = "parquet" if result_format == "PARQUET" else "csv"
    parts = split(table, output.get("singleFileOutput", True))
    keys = []
    for i, part in enumerate(parts):
        name = f"result.{ext}" if len(parts) == 1 else f"part-{i:05d}.{ext}"
        key = f"{folder}result/{name}"
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=encode(part, result_format),
            ContentType=CONTENT_TYPES[result_format],
        )
        keys.append(key)
    return S3Written(location=f"s3://{bucket}/{folder}", keys=tuple(keys))


def write_member(members_dir: Path, account_id: str, query_id: str, table: pa.Table) -> Path:
    """Keep a member receiver's rows on disk for inspection (the real service has no such
    place: the receiver reads them in the console or through its own result configuration)."""
    folder = members_dir / account_id / query_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "result.csv"
    target.write_bytes(encode(table, "CSV"))
    return target

#!/usr/bin/env python3
"""The processing loop of AWS's Python blueprint for this job (kinesis-firehose-cloudwatch-logs-processor),
written anew from its documented behaviour so both run on the same input in one process each:
base64-decode and gunzip each record, parse the envelope, drop CONTROL_MESSAGE, emit each event's message
plus a newline (no parsing, no metadata), base64-encode, split a record whose output alone exceeds 6 MB into
two gzipped halves, and leave records beyond the 6 MB response budget for re-ingestion (the original payload). Usage: blueprint_equivalent.py EVENT.json > response.json
Prints throughput in MB/s of decompressed input on stderr, like `fleetlog-etl-bench transform`."""
import base64
import gzip
import json
import sys
import time

BUDGET = 6_000_000


def transform_log_event(log_event):
    """The blueprint's per-event hook (users edit it to reshape lines): the message plus a newline."""
    return log_event["message"] + "\n"


def transform(event):
    out, reingest, used, decompressed = [], [], 0, 0
    for record in event["records"]:
        plain = gzip.decompress(base64.b64decode(record["data"]))
        decompressed += len(plain)
        data = json.loads(plain)
        rid = record["recordId"]
        if data["messageType"] == "CONTROL_MESSAGE":
            out.append({"recordId": rid, "result": "Dropped"})
            continue
        if data["messageType"] != "DATA_MESSAGE":
            out.append({"recordId": rid, "result": "ProcessingFailed"})
            continue
        joined = "".join([transform_log_event(e) for e in data["logEvents"]])
        encoded = base64.b64encode(joined.encode("utf-8")).decode("ascii")
        if len(encoded) > BUDGET and len(data["logEvents"]) > 1:
            half = len(data["logEvents"]) // 2
            for events in (data["logEvents"][:half], data["logEvents"][half:]):
                reingest.append(gzip.compress(json.dumps(dict(data, logEvents=events)).encode()))
            out.append({"recordId": rid, "result": "Dropped"})
            continue
        if used + len(encoded) + len(rid) > BUDGET:
            reingest.append(record["data"])
            out.append({"recordId": rid, "result": "Dropped"})
            continue
        used += len(encoded) + len(rid)
        out.append({"recordId": rid, "result": "Ok", "data": encoded})
    return {"records": out}, reingest, decompressed


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    start = time.perf_counter()
    event = json.loads(text)
    response, reingest, decompressed = transform(event)
    body = json.dumps(response)
    elapsed = time.perf_counter() - start
    sys.stdout.write(body)
    print(
        f"blueprint: {len(event['records'])} records, {len(reingest)} re-ingested, "
        f"{decompressed / 1e6:.1f} MB decompressed in {elapsed:.3f} s = {decompressed / 1e6 / elapsed:.0f} MB/s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

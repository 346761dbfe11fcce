#!/usr/bin/env python3
"""The processing loop of AWS's Python blueprint for this job (kinesis-firehose-cloudwatch-logs-processor),
written anew from its documented behaviour so both run on the same input in one process each:
base64-decode and gunzip each record, parse the envelope, drop CONTROL_MESSAGE, emit each event's message
plus a newline (no parsing, no metadata), base64-encode, split a record whose output alone exceeds 6 MB into
two gzipped halves, and leave records beyond the 6 MB response budget for re-ingestion (the original payload).

Around that it does what AWS's Python runtime does around a handler (its runtime interface client): read
the event's bytes with the standard library's json, write the response with it (ensure_ascii=False on the
python3.12 and python3.13 runtimes, escaping non-ASCII on the others) and encode that to UTF-8 for the
runtime API.

Usage: blueprint_equivalent.py [--invocations N] [--runtime python3.14] EVENT.json > response.json
(N in one process, like a warm Lambda). Prints throughput in MB/s of decompressed input on stderr, like
`fleetlog-etl-bench transform`."""
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
    out, reingest, used, decompressed, delivered = [], [], 0, 0, 0
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
        delivered += len(plain)
        out.append({"recordId": rid, "result": "Ok", "data": encoded})
    return {"records": out}, reingest, decompressed, delivered


def option(args, name, default):
    if name not in args:
        return default
    at = args.index(name)
    value = args[at + 1]
    del args[at : at + 2]
    return value


def main():
    args = sys.argv[1:]
    invocations = max(1, int(option(args, "--invocations", "1")))
    runtime = option(args, "--runtime", "python3.14")
    encoder = json.JSONEncoder(ensure_ascii=runtime not in ("python3.12", "python3.13"), allow_nan=True)
    payload = open(args[0], "rb").read() if args else sys.stdin.buffer.read()
    seconds, event, response, body = [], None, None, None
    for _ in range(invocations):
        # The last invocation's objects are freed outside the timed span, as fleetlog-etl-bench does.
        event = response = body = None
        start = time.perf_counter()
        event = json.loads(payload)
        response, reingest, decompressed, delivered = transform(event)
        body = encoder.encode(response).encode("utf-8")
        seconds.append(time.perf_counter() - start)
    sys.stdout.buffer.write(body)
    mb, delivered_mb = decompressed / 1e6, delivered / 1e6

    def rates(s):
        return f"{s:.4f} s = {mb / s:.0f} MB/s in, {delivered_mb / s:.0f} MB/s delivered"

    print(
        f"blueprint: {len(event['records'])} records, {len(reingest)} re-ingested; "
        f"{mb:.1f} MB of logs in, {delivered_mb:.1f} MB delivered",
        file=sys.stderr,
    )
    print(f"blueprint: first invocation {rates(seconds[0])}", file=sys.stderr)
    if invocations > 1:
        warm = sorted(seconds[1:])[(invocations - 1) // 2]
        print(f"blueprint: warm, median of {invocations - 1} more: {rates(warm)}", file=sys.stderr)
        print(f"blueprint: warm, best of {invocations - 1} more: {rates(min(seconds[1:]))}", file=sys.stderr)


if __name__ == "__main__":
    main()

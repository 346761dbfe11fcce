#!/usr/bin/env python3
"""Seeds the fuzz corpora from a corpus event of fleetlog-etl-bench.

Usage: seeds.py EVENT.json   (from `fleetlog-etl-bench corpus --bytes 200000 > EVENT.json`)
Writes small envelopes (a few events each, as CloudWatch Logs spells them) to corpus/envelope/, the
distinct messages, as JSON string content, to corpus/message/, and a few record payloads and two
concatenated gzip members to corpus/gunzip/, beside this script."""
import base64
import gzip
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write(folder, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    event = json.load(open(sys.argv[1]))
    envelopes = [json.loads(gzip.decompress(base64.b64decode(r["data"]))) for r in event["records"]]
    messages = {}
    for envelope in envelopes:
        events = envelope["logEvents"]
        for start in range(0, min(len(events), 12), 3):
            small = dict(envelope, logEvents=events[start : start + 3])
            write(HERE / "corpus/envelope", json.dumps(small, separators=(",", ":"), ensure_ascii=False).encode())
        for e in events:
            literal = json.dumps(e["message"], ensure_ascii=False)[1:-1]
            messages.setdefault(literal[:40], literal)
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
               "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE"}]}
    write(HERE / "corpus/envelope", json.dumps(control, separators=(",", ":")).encode())
    # JSON allows a lone surrogate escape, which CloudWatch Logs never writes; records respell it.
    write(HERE / "corpus/envelope", b'{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s",'
          b'"subscriptionFilters":["f"],"logEvents":[{"id":"1\\udc00","timestamp":1,"message":"a\\ud83d b"}]}')
    for literal in messages.values():
        write(HERE / "corpus/message", literal.encode())
    for record in event["records"][:4]:
        write(HERE / "corpus/gunzip", base64.b64decode(record["data"]))
    write(HERE / "corpus/gunzip", gzip.compress(b"first ") + gzip.compress(b"second"))
    print(f"seeds.py: {len(list((HERE / 'corpus/envelope').iterdir()))} envelopes, "
          f"{len(list((HERE / 'corpus/message').iterdir()))} messages, "
          f"{len(list((HERE / 'corpus/gunzip').iterdir()))} gzip payloads", file=sys.stderr)


if __name__ == "__main__":
    main()

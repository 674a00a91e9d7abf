#!/usr/bin/env python3
"""Print auth-requests.jsonl from line N on, compactly: method path form -> answer"""
import json, os, sys
lines = open(os.environ.get("LAB", "/tmp/rmq-lab/run") + "/auth-requests.jsonl").read().splitlines()
start = int(sys.argv[1]) if len(sys.argv) > 1 else 0
for l in lines[start:]:
    e = json.loads(l)
    if "form" in e:
        f = "&".join(f"{k}={v}" for k, v in e["form"])
        print(f'{e["t"]:.3f} {e["method"]} {e["path"]} {f}{"?"+e["query"] if e["query"] else ""} -> {e["answer_status"]} {e["answer"]!r}')
    else:
        print(f'{e["t"]:.3f} {e["method"]} {e["path"]} -> {e["status"]}')

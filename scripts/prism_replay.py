#!/usr/bin/env python3
"""Replays the requests Paver sent to the fake Backstage and Argo CD servers
against Prism mock servers built from the real API descriptions, and
reports every request Prism finds invalid. Not part of CI (it needs npm).

    PAVER_CONTRACT_DUMP=/tmp/paver-contract.jsonl cargo test --test drivers_backstage --test drivers_argocd
    npm install --prefix /tmp/prism @stoplight/prism-cli@5.14.2
    python3 scripts/prism_replay.py /tmp/paver-contract.jsonl /tmp/prism/node_modules/.bin/prism

Prism matches `paths` literally and does not strip base paths, so a copy of
each description with its paths under the recorded prefix (Backstage's
`/api/scaffolder`) is written to a temporary directory first.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(dump, prism):
    requests = [json.loads(line) for line in open(dump)]
    specs = sorted({(r["spec"], r["prefix"]) for r in requests})
    tmp = tempfile.mkdtemp(prefix="paver-prism-")
    servers, procs = {}, []
    try:
        for spec, prefix in specs:
            doc = json.load(open(spec))
            if prefix:
                doc["paths"] = {prefix + p: v for p, v in doc["paths"].items()}
            copy = os.path.join(tmp, f"{len(servers)}.json")
            json.dump(doc, open(copy, "w"))
            port = free_port()
            log = open(os.path.join(tmp, f"{len(servers)}.log"), "w")
            procs.append(subprocess.Popen([prism, "mock", "-h", "127.0.0.1", "-p", str(port), copy],
                                          stdout=log, stderr=subprocess.STDOUT))
            servers[(spec, prefix)] = f"http://127.0.0.1:{port}"
        for base in servers.values():
            for _ in range(120):
                try:
                    urllib.request.urlopen(base + "/__paver_probe", timeout=1)
                except urllib.error.HTTPError:
                    break
                except Exception:
                    time.sleep(0.5)
        bad = 0
        seen = set()
        for r in requests:
            key = (r["method"], r["path"], json.dumps(r["query"]), r["body"])
            if key in seen:
                continue
            seen.add(key)
            base = servers[(r["spec"], r["prefix"])]
            url = base + urllib.parse.quote(r["path"]) + ("?" + urllib.parse.urlencode([tuple(kv) for kv in r["query"]]) if r["query"] else "")
            data = r["body"].encode() if r["body"] else None
            req = urllib.request.Request(url, data=data, method=r["method"])
            if r["content_type"]:
                req.add_header("Content-Type", r["content_type"])
            if r["authorization"]:
                req.add_header("Authorization", "Bearer prism")
            try:
                resp = urllib.request.urlopen(req, timeout=10)
                status, violations = resp.status, resp.headers.get("sl-violations")
            except urllib.error.HTTPError as e:
                status, violations = e.code, e.headers.get("sl-violations")
            # Only the request's violations: Prism also flags its own
            # generated response bodies (Argo CD's format "byte" fields).
            errors = [v for v in json.loads(violations or "[]")
                      if v.get("severity") == "Error" and v.get("location", [""])[0] == "request"]
            verdict = "ok" if status < 400 and not errors else "INVALID"
            if verdict != "ok":
                bad += 1
            print(f"{verdict:8} {status} {r['method']:5} {r['path']} {errors if errors else ''}")
        print(f"{len(seen)} distinct requests, {bad} invalid")
        return 1 if bad else 0
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "prism"))

"""Outside checkers for fleetca: schemathesis on the served OpenAPI document and pkilint (plus
`openssl verify`) on the certificates and CRLs the server issues, on SQLite and on PostgreSQL.

    python3 tests/conformance/run.py [--backends sqlite,postgres] [--max-examples N] [--seed N]

PostgreSQL needs FLEETCA_TEST_POSTGRES_URL (a server URL; a fresh database is made on it and
dropped afterwards); asking for it without that variable is an error, never a skip. The binary is
target/debug/fleetca (or $FLEETCA_BIN). Everything each backend's run produced (server log,
schemathesis output and reports, the linted PEM/DER files) is kept in tests/conformance/artifacts/.
Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_fuzz  # noqa: E402
import pki_lint  # noqa: E402
from harness import HERE, Failure, Fleetca, PostgresDatabase, fleetca_binary  # noqa: E402


def banner(text: str) -> None:
    print(f"\n---- {text}", flush=True)


def run_backend(backend: str, binary: Path, args) -> tuple[list[str], list[str]]:
    """Returns (summary lines, failure lines) for one backend."""
    workdir = HERE / "artifacts" / backend
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    failures: list[str] = []
    summary: list[str] = []
    database = None
    server = None
    try:
        if backend == "postgres":
            database = PostgresDatabase(os.environ["FLEETCA_TEST_POSTGRES_URL"], "pg")
        # The PostgreSQL installation's CAs have RSA-3072 keys, so that pkilint and openssl see
        # an RSA root, intermediate and CRLs beside the SQLite installation's P-256 ones.
        algorithm = "rsa3072" if backend == "postgres" else "p256"
        banner(
            f"[{backend}] starting {binary} ({'database ' + database.name if database else 'SQLite'}, "
            f"{algorithm} CAs)"
        )
        server = Fleetca(
            binary, workdir, database.url if database else None, settings=f'ca_key_algorithm = "{algorithm}"\n'
        )

        banner(f"[{backend}] pkilint and openssl verify")
        pki = pki_lint.check(
            server, workdir / "pki", "sha256WithRSAEncryption" if algorithm == "rsa3072" else "ecdsa-with-SHA256"
        )
        for line in pki.info:
            print(f"  info (below {pki_lint.GATE}, not a failure): {line}")
        failures += [f"[{backend}] pkilint: {f}" for f in pki.findings]
        failures += [f"[{backend}] pki: {p}" for p in pki.problems]

        banner(f"[{backend}] schemathesis")
        started = time.monotonic()
        fuzz = api_fuzz.check(server, workdir, args.max_examples, args.seed, args.extra_checks)
        failures += [f"[{backend}] schemathesis: {f}" for f in fuzz.failures]
        if fuzz.never_accepted:
            print(f"  note: never answered 2xx: {', '.join(sorted(fuzz.never_accepted))}")

        after = pki_lint.lint_crl_again(server, workdir / "pki", "after-fuzzing")
        failures += [f"[{backend}] pkilint: {f}" for f in after.findings + after.problems]

        summary.append(
            f"[{backend}] schemathesis: {fuzz.generated} test cases generated, "
            f"{fuzz.operations_tested}/{fuzz.operations_total} operations covered "
            f"({fuzz.operations_total - len(fuzz.never_accepted)} of them answered 2xx at least once), "
            f"{fuzz.failure_count} failures (seed {fuzz.seed}, {time.monotonic() - started:.0f} s); "
            f"warnings: {', '.join(f'{k} ({len(v)})' for k, v in fuzz.warnings.items()) or 'none'}"
        )
        summary.append(
            f"[{backend}] pkilint ({algorithm} CAs): {pki.documents + after.documents} documents linted, "
            f"{len(pki.findings) + len(after.findings)} findings at {pki_lint.GATE} or above "
            f"({len(pki.info) + len(after.info)} below); openssl verify: {pki.verify_ok}/{pki.verify_runs} as expected; "
            f"{len(pki.problems)} other problems"
        )
    except Failure as e:
        failures.append(f"[{backend}] {e}")
    except Exception:  # a bug in the checker itself is a failure too
        failures.append(f"[{backend}] checker crashed:\n{traceback.format_exc()}")
    finally:
        if server is not None:
            panics = server.stop()
            failures += [f"[{backend}] fleetca log shows a panic: {line}" for line in panics]
        if database is not None:
            try:
                database.drop()
            except Failure as e:
                failures.append(f"[{backend}] {e}")
    return summary, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FLEETCA_CONFORMANCE_EXAMPLES", 80)),
                        help="schemathesis --max-examples: test cases per operation and phase (default 80, "
                             "or $FLEETCA_CONFORMANCE_EXAMPLES)")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis seed (default: random, printed)")
    parser.add_argument("--extra-checks", default="",
                        help="more schemathesis checks to gate on, comma-separated (e.g. positive_data_acceptance,"
                             "negative_data_rejection,unsupported_method,allow_header_conformance)")
    args = parser.parse_args()

    args.extra_checks = [c.strip() for c in args.extra_checks.split(",") if c.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown or not backends:
        parser.error(f"unknown backends: {', '.join(sorted(unknown)) or '(none given)'}")
    try:
        binary = fleetca_binary()
        if "postgres" in backends and not os.environ.get("FLEETCA_TEST_POSTGRES_URL"):
            raise Failure("--backends includes postgres but FLEETCA_TEST_POSTGRES_URL is not set "
                          "(scripts/test sets it; or pass --backends sqlite)")
    except Failure as e:
        print(f"conformance: FAILED: {e}", file=sys.stderr)
        return 1

    summaries: list[str] = []
    failures: list[str] = []
    for backend in backends:
        s, f = run_backend(backend, binary, args)
        summaries += s
        failures += f

    banner("conformance summary")
    for line in summaries:
        print(line)
    if failures:
        print(f"\nconformance: FAILED ({len(failures)}):", file=sys.stderr)
        for line in failures:
            print(f"  - {line}", file=sys.stderr)
        print(f"(artifacts: {HERE / 'artifacts'})", file=sys.stderr)
        return 1
    print("conformance: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

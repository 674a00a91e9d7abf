#!/usr/bin/env bash
# The conformance checkers (schemathesis on the OpenAPI document, pkilint and openssl verify on
# the certificates and CRLs) against target/debug/fleetca, on SQLite and, with
# FLEETCA_TEST_POSTGRES_URL, on PostgreSQL. Arguments go to run.py (see --help).
set -euo pipefail
cd "$(dirname "$0")"
command -v openssl >/dev/null || { echo "conformance: openssl is missing" >&2; exit 1; }
python3 -m pip install -q --disable-pip-version-check -r requirements.txt
exec python3 run.py "$@"

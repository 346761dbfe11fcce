#!/usr/bin/env bash
# Installs the pinned infra tools once into a per-user virtualenv and prints its bin directory:
# the CloudFormation checkers (cfn-lint, checkov), the IAM policy linter (parliament), the Trino-dialect
# SQL parser the named queries are checked with (sqlglot), and cargo-lambda with the zig it links with
# (scripts/package builds the Lambda zips with them).
set -euo pipefail

cfn_lint="1.58.0"
checkov="3.3.30"
parliament="1.6.4"
sqlglot="30.31.0"
cargo_lambda="1.9.2"
ziglang="0.15.2"
tools_dir="${FLEETLOG_TOOLS_DIR:-$HOME/.cache/fleetlog}"
venv="$tools_dir/infra-tools-cfnlint-$cfn_lint-checkov-$checkov-parliament-$parliament-sqlglot-$sqlglot-cargolambda-$cargo_lambda-zig-$ziglang"

if [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/checkov" ] && [ -x "$venv/bin/parliament" ] \
  && [ -f "$venv/.sqlglot-$sqlglot" ] && [ -x "$venv/bin/cargo-lambda" ] && [ -x "$venv/bin/python-zig" ]; then
  echo "$venv/bin"
  exit 0
fi

echo "fleetlog: installing cfn-lint $cfn_lint, checkov $checkov, parliament $parliament, sqlglot $sqlglot, cargo-lambda $cargo_lambda and zig $ziglang into $venv (once)" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "cfn-lint==$cfn_lint" "checkov==$checkov" "parliament==$parliament" "sqlglot==$sqlglot" \
  "cargo-lambda==$cargo_lambda" "ziglang==$ziglang" >&2
touch "$venv/.sqlglot-$sqlglot"
echo "$venv/bin"

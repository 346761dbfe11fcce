#!/usr/bin/env bash
# Installs the pinned CloudFormation checkers (cfn-lint, checkov) once into a per-user virtualenv and
# prints its bin directory.
set -euo pipefail

cfn_lint="1.58.0"
checkov="3.3.30"
tools_dir="${FLEETLOG_TOOLS_DIR:-$HOME/.cache/fleetlog}"
venv="$tools_dir/infra-tools-cfnlint-$cfn_lint-checkov-$checkov"

if [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/checkov" ]; then
  echo "$venv/bin"
  exit 0
fi

echo "fleetlog: installing cfn-lint $cfn_lint and checkov $checkov into $venv (once)" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$cfn_lint" "checkov==$checkov" >&2
echo "$venv/bin"

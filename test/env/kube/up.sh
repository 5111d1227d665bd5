#!/usr/bin/env bash
# Starts a throwaway Kubernetes control plane for integration tests: etcd and
# kube-apiserver only, on loopback ports, with every file in DIR. There is no
# controller-manager, scheduler or kubelet, so nothing garbage-collects,
# finalizes namespaces or runs pods; CRDs, status, watches, leases, RBAC and
# helm installs all work.
#
#   bash test/env/kube/up.sh DIR     -> prints DIR once /readyz answers ok
#
# DIR then holds:
#   kubeconfig           admin (user admin, group system:masters)
#   kubeconfig-operator  the operator's service account identity, with no RBAC
#                        grants beyond the defaults for authenticated users
#   env                  export lines for QTEST_KUBECONFIG,
#                        QTEST_KUBECONFIG_OPERATOR and QTEST_KUBE_DIR
# Running it again on a DIR whose control plane is still up reuses it.
# test/env/kube/down.sh DIR stops it and removes DIR.
#
# QTEST_KUBE_SERVICE_ACCOUNTS=1 turns ServiceAccount admission on, for a
# control plane that gets a node and a controller-manager (test/env/node):
# pods then mount their service account's token and use it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "$here/../lib/procs.sh"

log() { printf 'kube/up: %s\n' "$*" >&2; }

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi

# down.sh removes whatever DIR holds, so it only does so where this marker
# says the directory is ours.
marker=.quarantine-kube
operator_user=system:serviceaccount:quarantine-system:quarantine-operator
operator_groups=system:serviceaccounts,system:serviceaccounts:quarantine-system,system:authenticated

mkdir -p "$1"
dir="$(cd "$1" && pwd)"
if [[ ! -e "$dir/$marker" && -n "$(ls -A "$dir")" ]]; then
  log "$dir is not empty and was not made by up.sh; refusing to use it"
  exit 1
fi

readyz() {
  local port="$1" token="$2"
  [[ "$(curl -s --max-time 5 --cacert "$dir/pki/ca.crt" \
    -H "Authorization: Bearer $token" "https://127.0.0.1:$port/readyz" 2>/dev/null)" == ok ]]
}

service_accounts="${QTEST_KUBE_SERVICE_ACCOUNTS:-0}"
if [[ -e "$dir/$marker" ]]; then
  if [[ "$(cat "$dir/service-accounts" 2>/dev/null)" == "$service_accounts" ]] && proc_ours "$dir" etcd && proc_ours "$dir" kube-apiserver &&
    [[ -s "$dir/apiserver.port" && -s "$dir/admin.token" && -s "$dir/env" ]] &&
    readyz "$(<"$dir/apiserver.port")" "$(<"$dir/admin.token")"; then
    log "reusing the running control plane in $dir"
    printf '%s\n' "$dir"
    exit 0
  fi
  # Half-started or left over from a crash: clear it out and start clean.
  log "$dir holds a stopped or partial control plane; restarting it"
  bash "$here/down.sh" "$dir"
  mkdir -p "$dir"
fi
touch "$dir/$marker"
printf '%s\n' "$service_accounts" >"$dir/service-accounts"

started=()
on_exit() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "failed; stopping what this run started (logs stay in $dir)"
    local pid
    for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do
      for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    done
    for f in etcd kube-apiserver; do
      [[ -f "$dir/$f.log" ]] && { log "last lines of $f.log:"; tail -n 20 "$dir/$f.log" >&2; }
    done
  fi
  exit "$status"
}
trap on_exit EXIT

begin=$SECONDS
bin="$(bash "$here/build.sh")"

# Starts one of the built binaries (test/env/lib/procs.sh) and records its pid.
launch() {
  local name="$1"
  shift
  proc_start "$dir" "$name" "$bin/$name" "$@" || return 1
  started+=("$(<"$dir/$name.pid")")
}

lost_port_race() { grep -q 'address already in use' "$dir/$1.log"; }

# Waits for a check to pass while the process is alive; returns 1 if it dies
# or the time runs out.
wait_for() {
  local name="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    "$@" && return 0
    proc_ours "$dir" "$name" || return 1
    sleep 0.2
  done
  return 1
}

# --- credentials ------------------------------------------------------------
mkdir -p "$dir/pki"
(
  cd "$dir/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=quarantine-test-ca \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
    -keyout apiserver.key -out apiserver.csr 2>/dev/null
  # Clients verify the server by the address they dial, so the loopback address
  # and the in-cluster names helm or client libraries may use are all listed.
  printf '%s\n' \
    'basicConstraints = CA:FALSE' \
    'keyUsage = digitalSignature, keyEncipherment' \
    'extendedKeyUsage = serverAuth' \
    'subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, IP:10.0.0.1' \
    >apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  # Service account tokens are signed with this key and checked with its public half.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  chmod 600 ca.key apiserver.key sa.key
)

admin_token="$(openssl rand -hex 24)"
operator_token="$(openssl rand -hex 24)"
printf '%s\n' "$admin_token" >"$dir/admin.token"
printf '%s\n' "$operator_token" >"$dir/operator.token"
# token,user,uid,"groups"
printf '%s\n' \
  "$admin_token,admin,admin,\"system:masters\"" \
  "$operator_token,$operator_user,quarantine-operator,\"$operator_groups\"" \
  >"$dir/tokens.csv"
chmod 600 "$dir/admin.token" "$dir/operator.token" "$dir/tokens.csv"

# --- etcd -------------------------------------------------------------------
etcd_up() { [[ "$(curl -s --max-time 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null)" == *'"health":"true"'* ]]; }

for attempt in 1 2 3; do
  etcd_port="$(proc_free_port)"
  peer_port="$(proc_free_port)"
  while [[ "$peer_port" == "$etcd_port" ]]; do peer_port="$(proc_free_port)"; done
  rm -rf "$dir/etcd"
  # fsync is off because the data dies with the test run and fsync dominates
  # etcd's latency on small disks.
  launch etcd \
    --name=qtest \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="qtest=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync \
    --log-level=warn
  if wait_for etcd 60 etcd_up; then break; fi
  if proc_ours "$dir" etcd || ((attempt == 3)) || ! lost_port_race etcd; then
    log "etcd did not become healthy"
    exit 1
  fi
  log "etcd found a port taken; retrying with other ports"
done
printf '%s\n' "$etcd_port" >"$dir/etcd.port"

# --- kube-apiserver ---------------------------------------------------------
admission=(--disable-admission-plugins=ServiceAccount)
[[ "$service_accounts" == 1 ]] && admission=(--enable-admission-plugins=ServiceAccount)
for attempt in 1 2 3; do
  port="$(proc_free_port)"
  # ServiceAccount admission is off unless asked for: it rejects pods whose
  # service account does not exist, and with no controller-manager none ever
  # will.
  # The endpoint reconciler is off because it would publish the loopback
  # address as the kubernetes service's endpoint, which validation rejects
  # every few seconds; nothing here routes to that service anyway.
  # Privileged pods are allowed, as on the clusters the operator's chart
  # targets, so manifests are validated the same way here.
  # The test node's kubelet (test/env/node) listens on loopback only; its
  # Hostname address resolves there, so logs and exec go that way first.
  launch kube-apiserver \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$port" \
    --tls-cert-file="$dir/pki/apiserver.crt" \
    --tls-private-key-file="$dir/pki/apiserver.key" \
    --token-auth-file="$dir/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer="https://127.0.0.1:$port" \
    --service-account-key-file="$dir/pki/sa.pub" \
    --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    "${admission[@]}" \
    --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=Hostname,InternalIP,ExternalIP \
    --allow-privileged=true \
    --profiling=false
  if wait_for kube-apiserver 120 readyz "$port" "$admin_token"; then break; fi
  if proc_ours "$dir" kube-apiserver || ((attempt == 3)) || ! lost_port_race kube-apiserver; then
    log "kube-apiserver did not become ready"
    exit 1
  fi
  log "kube-apiserver found its port taken; retrying with another port"
done
printf '%s\n' "$port" >"$dir/apiserver.port"

# --- kubeconfigs and env ----------------------------------------------------
ca_data="$(base64 -w0 <"$dir/pki/ca.crt")"
write_kubeconfig() {
  local file="$1" user="$2" token="$3"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: quarantine-test
    cluster:
      server: https://127.0.0.1:$port
      certificate-authority-data: $ca_data
users:
  - name: $user
    user:
      token: $token
contexts:
  - name: $user@quarantine-test
    context:
      cluster: quarantine-test
      user: $user
      namespace: default
current-context: $user@quarantine-test
EOF
  chmod 600 "$file"
}
write_kubeconfig "$dir/kubeconfig" admin "$admin_token"
write_kubeconfig "$dir/kubeconfig-operator" quarantine-operator "$operator_token"

{
  printf 'export QTEST_KUBECONFIG=%q\n' "$dir/kubeconfig"
  printf 'export QTEST_KUBECONFIG_OPERATOR=%q\n' "$dir/kubeconfig-operator"
  printf 'export QTEST_KUBE_DIR=%q\n' "$dir"
} >"$dir/env.tmp"
mv "$dir/env.tmp" "$dir/env"

log "ready in $((SECONDS - begin))s: https://127.0.0.1:$port (etcd 127.0.0.1:$etcd_port)"
printf '%s\n' "$dir"

#!/usr/bin/env bash
# Brings up every real service the tests use and writes their connection
# details to $STATE/env (default test/env/.state/env). Safe to run twice: a
# second run reuses what is already up.
# Env: QTEST_STATE_DIR, QTEST_SERVICES (default "amqp postgres ceph kube"; add
# "node" for a one-node cluster that runs pods, which changes host settings
# while it runs and of which a machine holds one at a time: see node/up.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${QTEST_STATE_DIR:-$HERE/.state}
SERVICES=${QTEST_SERVICES:-amqp postgres ceph kube}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
log() { echo "test/env: $*" >&2; }
has() { case " $SERVICES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# A node needs the API server, with ServiceAccount admission so that pods get their tokens.
if has node; then
  has kube || SERVICES="$SERVICES kube"
  export QTEST_KUBE_SERVICE_ACCOUNTS=1
fi

bash "$HERE/install.sh"

# Daemon socket paths must stay short, and a checkout's path can be long.
key=$(printf '%s' "$STATE" | sha256sum | cut -c1-10)
CEPH_DIR=/tmp/qop-ceph-$key
KUBE_DIR=/tmp/qop-kube-$key
NODE_DIR=/tmp/qop-node-$key
echo "$CEPH_DIR" >"$STATE/ceph-dir"
echo "$KUBE_DIR" >"$STATE/kube-dir"
if has node; then echo "$NODE_DIR" >"$STATE/node-dir"; fi

: >"$STATE/env.partial"
if has amqp || has postgres; then
  bash "$HERE/services.sh" up "$STATE"
  cat "$STATE/services.env" >>"$STATE/env.partial"
fi
if has ceph; then
  t0=$(date +%s%N)
  bash "$HERE/ceph-up.sh" "$CEPH_DIR" >/dev/null
  cat "$CEPH_DIR/env" >>"$STATE/env.partial"
  log "ceph up in $(( ($(date +%s%N) - t0) / 1000000 )) ms ($CEPH_DIR)"
fi
if has kube && [ -x "$HERE/kube/up.sh" ]; then
  command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || { log "Go is needed to build the test kube-apiserver (install Go 1.24+ or set QTEST_SERVICES without kube)"; exit 1; }
  export PATH="$PATH:/usr/local/go/bin"
  bash "$HERE/kube/up.sh" "$KUBE_DIR" >/dev/null
  cat "$KUBE_DIR/env" >>"$STATE/env.partial"
  log "kube-apiserver up ($KUBE_DIR)"
fi
if has node; then
  t0=$(date +%s%N)
  bash "$HERE/node/up.sh" "$NODE_DIR" "$KUBE_DIR" >/dev/null
  cat "$NODE_DIR/env" >>"$STATE/env.partial"
  log "node up in $(( ($(date +%s%N) - t0) / 1000000 )) ms ($NODE_DIR)"
fi
echo "export QTEST_STATE_DIR='$STATE'" >>"$STATE/env.partial"
mv "$STATE/env.partial" "$STATE/env"
log "ready: source $STATE/env"
echo "$STATE/env"

#!/usr/bin/env bash
# Adds one node to the control plane that test/env/kube/up.sh started in
# KUBE_DIR, so that pods really run: Debian's containerd and runc with their
# own config, state and socket under DIR, and the kubelet, kube-scheduler and
# kube-controller-manager that test/env/node/build.sh builds. No registry is
# used: the sandbox ("pause") image is built here and imported, and tests
# import their own images the same way (QTEST_NODE_CTR).
#
#   bash test/env/node/up.sh DIR KUBE_DIR   -> prints DIR once the node is Ready
#
# DIR then holds `env` with export lines for QTEST_NODE_DIR, QTEST_NODE_NAME,
# QTEST_NODE_CTR (a ctr command line for the node's containerd) and
# QTEST_NODE_POD_LOGS. Running it again while the node is up reuses it.
# test/env/node/down.sh DIR stops everything and restores the host.
#
# What the kubelet changes on the host, and how it is undone (down.sh):
#   - sysctls it sets unconditionally: saved in DIR/sysctl.saved, restored;
#   - /var/lib/kubelet and /var/log/containers, which it creates whatever its
#     --root-dir says, and /run/containerd, where containerd's shims keep their
#     sockets whatever its state dir is: removed if they did not exist before;
#   - cgroups under /sys/fs/cgroup/*/kubepods: removed (a kubepods cgroup that
#     existed before up is emptied and kept, as found);
#   - mounts under DIR (its root dir bind-mounted onto itself, volumes): unmounted.
# The host has one set of those, so only one such node may run on a machine:
# /tmp/qop-node.owner names the DIR that has it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "$here/../lib/procs.sh"

log() { printf 'node/up: %s\n' "$*" >&2; }

if [[ $# -ne 2 || -z "$1" || -z "$2" ]]; then
  echo "usage: $0 DIR KUBE_DIR" >&2
  exit 2
fi
kube_dir="$(cd "$2" && pwd)"
for f in kubeconfig apiserver.port admin.token pki/ca.crt pki/sa.key; do
  [[ -s "$kube_dir/$f" ]] || { log "$kube_dir has no $f: start test/env/kube/up.sh first"; exit 1; }
done

marker=.quarantine-node
owner_file=/tmp/qop-node.owner
mkdir -p "$1"
dir="$(cd "$1" && pwd)"
if [[ ! -e "$dir/$marker" && -n "$(ls -A "$dir")" ]]; then
  log "$dir is not empty and was not made by up.sh; refusing to use it"
  exit 1
fi

api() {
  curl -s --max-time 5 --cacert "$kube_dir/pki/ca.crt" -H "Authorization: Bearer $(<"$kube_dir/admin.token")" \
    "https://127.0.0.1:$(<"$kube_dir/apiserver.port")$1"
}

node_name="$(hostname | tr '[:upper:]' '[:lower:]')"

node_ready() {
  api "/api/v1/nodes/$node_name" | node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      try {
        const n = JSON.parse(s);
        const ready = (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
        const tainted = (n.spec?.taints ?? []).some((t) => t.key.startsWith("node.kubernetes.io/"));
        process.exit(ready && !tainted ? 0 : 1);
      } catch { process.exit(1); }
    });'
}

components=(containerd kubelet kube-scheduler kube-controller-manager)

if [[ -e "$dir/$marker" ]]; then
  all=1
  for c in "${components[@]}"; do proc_ours "$dir" "$c" || all=0; done
  if ((all)) && [[ -s "$dir/env" ]] && node_ready; then
    log "reusing the running node in $dir"
    printf '%s\n' "$dir"
    exit 0
  fi
  log "$dir holds a stopped or partial node; restarting it"
  bash "$here/down.sh" "$dir"
  mkdir -p "$dir"
fi

# One node per machine: the kubelet's host-wide paths and sysctls admit no second one.
if [[ -s "$owner_file" ]]; then
  other="$(<"$owner_file")"
  if [[ "$other" != "$dir" && -e "$other/.quarantine-node" && -s "$other/kubelet.pid" ]] &&
    proc_alive "$(<"$other/kubelet.pid")"; then
    log "another test node runs on this machine ($other); stop it with test/env/node/down.sh $other, or wait for it"
    exit 1
  fi
fi
printf '%s\n' "$dir" >"$owner_file"
touch "$dir/$marker"

on_exit() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "failed; stopping what this run started (logs stay in $dir)"
    for f in containerd kubelet kube-scheduler kube-controller-manager; do
      [[ -f "$dir/$f.log" ]] && { log "last lines of $f.log:"; tail -n 15 "$dir/$f.log" >&2; }
    done
    QTEST_NODE_KEEP_LOGS=1 bash "$here/down.sh" "$dir" || true
  fi
  exit "$status"
}
trap on_exit EXIT

begin=$SECONDS
bin="$(bash "$here/build.sh")"
for b in containerd runc ctr; do
  command -v "$b" >/dev/null || { log "$b is not installed (test/env/install.sh installs containerd and runc)"; exit 1; }
done

# launch NAME EXE [ARG...] (test/env/lib/procs.sh)
launch() { proc_start "$dir" "$@"; }

wait_for() {
  local what="$1" seconds="$2"
  shift 2
  for _ in $(seq $((seconds * 5))); do
    "$@" && return 0
    proc_ours "$dir" "$what" || { log "$what exited"; return 1; }
    sleep 0.2
  done
  log "$what was not ready after ${seconds}s"
  return 1
}

# --- host state the kubelet changes -------------------------------------------
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
if [[ ! -s "$dir/sysctl.saved" ]]; then
  for s in "${sysctls[@]}"; do printf '%s=%s\n' "$s" "$(sysctl -n "$s")"; done >"$dir/sysctl.saved.tmp"
  mv "$dir/sysctl.saved.tmp" "$dir/sysctl.saved"
  : >"$dir/host-paths.created"
  for p in /var/lib/kubelet /var/log/containers /var/log/pods /run/containerd; do
    [[ -e "$p" ]] || printf '%s\n' "$p" >>"$dir/host-paths.created"
  done
  # A kubepods cgroup left by a node that was killed before its down.sh ran
  # belongs to the host as found: down.sh empties it but leaves it in place.
  for h in /sys/fs/cgroup/*/kubepods; do [[ -d "$h" ]] && printf '%s\n' "$h"; done >"$dir/cgroups.preexisting"
fi

mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/cni/bin" "$dir/kubelet" "$dir/pod-logs" "$dir/volume-plugins"
sock="$dir/containerd.sock"
pause_ref=localhost/qop-pause:1

# --- containerd -----------------------------------------------------------------
# restrict_oom_score_adj: root in this VM lacks CAP_SYS_RESOURCE, so runc cannot
# lower a sandbox's oom_score_adj, and every pod would fail to start without it.
cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni/bin"
    conf_dir = "$dir/cni/net.d"
EOF

# The node is Ready only with a network config; every pod here uses the host's
# network, so the plugin it names is never run.
cat >"$dir/cni/net.d/10-loopback.conflist" <<'EOF'
{ "cniVersion": "0.4.0", "name": "qop-host-only", "plugins": [{ "type": "loopback" }] }
EOF

containerd_up() { ctr --address "$sock" version >/dev/null 2>&1; }
launch containerd "$(command -v containerd)" --config "$dir/containerd.toml" --log-level warn
wait_for containerd 30 containerd_up

ctr_cmd=(ctr --address "$sock" --namespace k8s.io)

# --- the sandbox image ------------------------------------------------------------
pause_root="$dir/pause-rootfs"
rm -rf "$pause_root"
mkdir -p "$pause_root"
cp "$bin/pause" "$pause_root/pause"
bash "$here/image-tar.sh" "$pause_root" '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$pause_ref" "$dir/pause.tar" >/dev/null
"${ctr_cmd[@]}" images import "$dir/pause.tar" >/dev/null
rm -rf "$pause_root" "$dir/pause.tar"

# --- kubelet --------------------------------------------------------------------
kubelet_port="$(proc_free_port)"
kubelet_healthz="$(proc_free_port)"
cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Loopback only, so the anonymous AlwaysAllow access below reaches no one else.
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
podLogsDir: $dir/pod-logs
volumePluginDir: $dir/volume-plugins
resolvConf: /etc/resolv.conf
maxPods: 30
serializeImagePulls: false
# Never evict or garbage-collect for a busy shared disk during a test.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
EOF
kubelet_healthy() { [[ "$(curl -s --max-time 2 "http://127.0.0.1:$kubelet_healthz/healthz" 2>/dev/null)" == ok ]]; }
launch kubelet "$bin/kubelet" \
  --config="$dir/kubelet.yaml" \
  --kubeconfig="$kube_dir/kubeconfig" \
  --root-dir="$dir/kubelet" \
  --cert-dir="$dir/kubelet/pki" \
  --hostname-override="$node_name" \
  --v=1
wait_for kubelet 60 kubelet_healthy

# --- scheduler and controller-manager -------------------------------------------
launch kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig="$kube_dir/kubeconfig" \
  --authentication-kubeconfig="$kube_dir/kubeconfig" \
  --authorization-kubeconfig="$kube_dir/kubeconfig" \
  --leader-elect=false \
  --bind-address=127.0.0.1 \
  --secure-port="$(proc_free_port)" \
  --cert-dir="$dir/kube-scheduler" \
  --v=1
# The root CA is what every pod's kube-root-ca.crt ConfigMap carries, and so
# what a pod's client verifies the API server with.
launch kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$kube_dir/kubeconfig" \
  --authentication-kubeconfig="$kube_dir/kubeconfig" \
  --authorization-kubeconfig="$kube_dir/kubeconfig" \
  --leader-elect=false \
  --bind-address=127.0.0.1 \
  --secure-port="$(proc_free_port)" \
  --cert-dir="$dir/kube-controller-manager" \
  --controllers='*,-csrsigning' \
  --root-ca-file="$kube_dir/pki/ca.crt" \
  --service-account-private-key-file="$kube_dir/pki/sa.key" \
  --use-service-account-credentials=false \
  --v=1

wait_for kubelet 90 node_ready

{
  printf 'export QTEST_NODE_DIR=%q\n' "$dir"
  printf 'export QTEST_NODE_NAME=%q\n' "$node_name"
  printf 'export QTEST_NODE_CTR=%q\n' "ctr --address $sock --namespace k8s.io"
  printf 'export QTEST_NODE_POD_LOGS=%q\n' "$dir/pod-logs"
} >"$dir/env.tmp"
mv "$dir/env.tmp" "$dir/env"
trap - EXIT
log "node $node_name ready in $((SECONDS - begin))s ($dir)"
printf '%s\n' "$dir"

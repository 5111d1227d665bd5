#!/usr/bin/env bash
# Kills `rbd flatten` of a v2 clone (exclusive-lock, object-map, fast-diff:
# what the operator's clones get) at seeded random moments, then flattens it
# again in a new process and compares the content with the parent snapshot's.
# Prints one line per trial and a summary.
#
#   CEPH_CONF=... bench/repro/flatten-kill.sh TRIALS SEED [MODE]
#   MODE: resume  (default) flatten again as is
#         rebuild `rbd object-map rebuild` first, then flatten
#         renew   drop the object map (feature disable), enable it again and rebuild it, then flatten
#
# The dead flatten's exclusive lock is broken with `rbd lock rm` (which
# blocklists the dead client), so a trial does not wait out the watch timeout.
set -euo pipefail
trials=${1:?trials}
seed=${2:?seed}
mode=${3:-resume}
: "${CEPH_CONF:?}"
id=${CEPH_ID:-admin}
src=${SRC_POOL:-vms}
dst=${DST_POOL:-quarantine}
rbd() { command rbd --id "$id" "$@"; }
rados() { command rados --id "$id" "$@"; }
RANDOM=$seed
tag="fk-$seed-$$"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 8 MiB in 64 KiB objects (128 objects), 6 MiB of it written with a seeded pattern.
parent="$src/$tag-parent"
(set +o pipefail; openssl enc -aes-128-ctr -pass "pass:$seed" -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c 6M >"$work/data")
head -c 2M /dev/zero >>"$work/data"
rbd import --no-progress --object-size 64K "$work/data" "$parent" >/dev/null
rbd snap create --no-progress "$parent@s"
want=$(rbd export --no-progress "$parent@s" - 2>/dev/null | sha256sum | cut -d' ' -f1)

# One flatten run to its end: how long one takes here, process start included; kills land in [0, that].
probe="$dst/$tag-probe"
rbd clone --rbd-default-clone-format=2 "$parent@s" "$probe"
t0=$(date +%s%N); command rbd --id "$id" flatten --no-progress "$probe"; t1=$(date +%s%N)
flat_ms=$(( (t1 - t0) / 1000000 ))
rbd rm --no-progress "$probe" >/dev/null
echo "# $(date -u +%FT%TZ) seed=$seed mode=$mode features=$(rbd info --format json "$parent" | tr -d '\n ' | sed 's/.*"features":\[\([^]]*\)\].*/\1/') whole flatten ${flat_ms} ms; kill in [0, ${flat_ms}] ms"

bad=0; clones=0; flat=0
for ((i = 0; i < trials; i++)); do
  clone="$dst/$tag-c$i"
  rbd clone --rbd-default-clone-format=2 "$parent@s" "$clone"
  delay=$(( (RANDOM * 32768 + RANDOM) % (flat_ms + 1) ))
  command rbd --id "$id" flatten --no-progress "$clone" >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk "BEGIN { print $delay / 1000 }")"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Break the dead client's exclusive lock (and blocklist it).
  rbd lock ls --format json "$clone" | python3 -c '
import json,sys
for l in json.load(sys.stdin): print(l["locker"], l["id"])' | while read -r locker lid rest; do
    rbd lock rm "$clone" "$lid $rest" "$locker" >/dev/null 2>&1 || true
  done
  info=$(rbd info --format json "$clone")
  if [[ $info != *'"parent"'* ]]; then
    flat=$((flat + 1)); echo "trial $i delay=${delay}ms: already flat"; rbd rm --no-progress "$clone" >/dev/null; continue
  fi
  clones=$((clones + 1))
  cid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$info")
  present=$(rados -p "$dst" ls | grep -c "^rbd_data\.$cid\." || true)
  if [ "$mode" = rebuild ]; then rbd object-map rebuild --no-progress "$clone" >/dev/null; fi
  if [ "$mode" = renew ]; then
    rbd feature disable "$clone" fast-diff object-map
    rbd feature enable "$clone" object-map fast-diff
    rbd object-map rebuild --no-progress "$clone" >/dev/null
  fi
  rbd flatten --no-progress "$clone" >/dev/null
  got=$(rbd export --no-progress "$clone" - 2>/dev/null | sha256sum | cut -d' ' -f1)
  after=$(rados -p "$dst" ls | grep -c "^rbd_data\.$cid\." || true)
  if [ "$got" != "$want" ]; then
    bad=$((bad + 1))
    check=$(rbd object-map check --no-progress "$clone" 2>&1 | tr '\n' ' ' | cut -c1-160 || true)
    echo "trial $i delay=${delay}ms: objects before resume ${present}, after ${after}: DIFFERS; object-map check: ${check}"
  else
    echo "trial $i delay=${delay}ms: objects before resume ${present}, after ${after}: equal"
  fi
  rbd rm --no-progress "$clone" >/dev/null
done
rbd snap rm --no-progress "$parent@s" >/dev/null
rbd rm --no-progress "$parent" >/dev/null
echo "# summary seed=$seed mode=$mode trials=$trials interrupted=$clones already-flat=$flat differs=$bad"

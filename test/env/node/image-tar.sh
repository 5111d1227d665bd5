#!/usr/bin/env bash
# Packs a root filesystem directory into an image archive in the layout of
# `docker save` (one uncompressed layer, the image config, manifest.json with
# the image's name), which `ctr images import` and `docker load` both read.
# No registry and no image builder is involved. The layer is reproducible:
# entries sorted, owned by root unless the tree says otherwise, mtimes zeroed.
#
#   image-tar.sh ROOTFS CONFIG_JSON NAME:TAG OUT.tar
#
# CONFIG_JSON is the image config's "config" object, e.g.
#   '{"User":"10001:10001","Entrypoint":["/pause"]}'
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 ROOTFS CONFIG_JSON NAME:TAG OUT.tar" >&2
  exit 2
fi
rootfs="$1" config="$2" ref="$3" out="$4"
[[ -d "$rootfs" ]] || { echo "image-tar: $rootfs is not a directory" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/qop-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

tar --create --file "$work/layer.tar" --directory "$rootfs" \
  --sort=name --mtime=@0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
mkdir "$work/$diff_id"
mv "$work/layer.tar" "$work/$diff_id/layer.tar"

printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$config" "$diff_id" >"$work/config.json"
config_id="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
mv "$work/config.json" "$work/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
  "$config_id" "$ref" "$diff_id" >"$work/manifest.json"

tar --create --file "$out.partial" --directory "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  manifest.json "$config_id.json" "$diff_id"
mv "$out.partial" "$out"
printf '%s\n' "$out"

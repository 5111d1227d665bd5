# syntax=docker/dockerfile:1
# The operator image: Node 24 runs the TypeScript sources directly (type
# stripping). librbd1/librados2 are what the default Ceph driver loads
# in-process (through koffi, whose prebuilt binary arrives as an optional npm
# dependency, so --ignore-scripts is fine); ceph-common provides the `rbd` CLI
# of the `cli` driver and the fallback. Build: docker build -t quarantine-operator:0.1.0 .
FROM node:24-bookworm-slim

# Debian bookworm's ceph-common is Pacific (16.2), the release the adapter is tested with.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ceph-common librbd1 librados2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so that a source change does not reinstall them. .npmrc
# carries legacy-peer-deps, without which `npm ci` rejects the lock file.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

COPY LICENSE ./
COPY operator ./operator
COPY crds ./crds
COPY scripts/fill-compile-cache.ts ./scripts/

# The default driver must load in this image: fail the build, not the first capture.
RUN node -e "const k=require('koffi');k.load('librados.so.2');k.load('librbd.so.1')"

# A numeric user, so that the kubelet can verify runAsNonRoot; it owns nothing in /app.
RUN groupadd --system --gid 10001 quarantine \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin quarantine
# Every module compiled now, under the ENTRYPOINT's flags and by the user that runs them (Node keys its cache
# by both), then handed to root: the operator starts without Node's type stripper (operator/process-memory.ts).
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
RUN install -d -o 10001 -g 10001 /app/.node-compile-cache \
 && setpriv --reuid=10001 --regid=10001 --clear-groups node scripts/fill-compile-cache.ts /app/.node-compile-cache \
 && chown -R 0:0 /app/.node-compile-cache
USER 10001:10001

ENV NODE_ENV=production
# Memory: see operator/process-memory.ts (two malloc arenas, small V8 semi-spaces).
ENV MALLOC_ARENA_MAX=2
EXPOSE 8080
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=30", "/app/operator/cli/main.ts"]
CMD ["run", "--kubernetes"]

# syntax=docker/dockerfile:1
# Node 22 LTS in both stages; the code also runs on Node >= 20.19 (package.json engines).

# Build: compile, convert the moderation model into dist/model, build the website into dist/web, then keep only
# what the server runs (the website's packages are all devDependencies: it ships as static files).
FROM node:22-bookworm-slim AS build
WORKDIR /app
# onnxruntime-node needs no download: its npm package ships the CPU binaries (no .npmrc in the image).
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
# The website is an npm workspace: its package.json must be there for npm ci to match the lock.
COPY web/package.json ./web/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY scripts ./scripts
COPY web ./web
# npm prune drops nsfwjs, @tensorflow/tfjs, typescript and ts-node (dev only once the model is built).
# onnxruntime-node ships binaries for every OS and CPU: keep this image's linux/<arch> only.
# The scripts are pointed at the compiled code: the image has no TypeScript sources and no ts-node.
RUN npm run build \
  && npm prune --omit=dev --no-audit --no-fund \
  && arch="$(node -p process.arch)" \
  && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 ! -name linux -exec rm -rf {} + \
  && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -path "*/linux/*" ! -name "$arch" -exec rm -rf {} + \
  && npm pkg set scripts.cli="node dist/src/cli.js" scripts.migrate="node dist/src/cli.js migrate" \
  && npm pkg delete scripts.prestart scripts.start:dev scripts.model:convert scripts.bench:moderation \
  && rm -rf dist/scripts

FROM node:22-bookworm-slim
WORKDIR /app
# NPM_CONFIG_UPDATE_NOTIFIER: `npm run cli` in the container should not ask the registry for npm updates.
# MALLOC_ARENA_MAX=1: glibc would give threads that allocate (libvips and libuv workers) arenas of their own and
# keep their freed pages; with one arena a frame freed by one thread is the next decode's memory, whichever thread
# makes it (with two, 2-5 in 50 back-to-back 1080p uploads decoded into fresh memory, 15-20 ms more each);
# MALLOC_MMAP_THRESHOLD_: buffers over 16 MB (a large upload's body and frames) are mapped on
# their own and unmapped when freed; MALLOC_TRIM_THRESHOLD_: up to 32 MB freed at the top of a heap stays for the next
# image (a 1080p frame is 6 MB, a small GIF's frames 9 MB: faulted in afresh for every decode, they cost 2-10 ms of
# system time). Together they let memory go back after a burst of large uploads (README, "Memory"); as in
# `npm start`.
# GLIBC_TUNABLES=glibc.malloc.hugetlb=1: those mappings (2 MB and up) ask for transparent huge pages, so a decoded
# frame is faulted in 2 MB at a time, not 4 KB (a 12 MP decode 2-3 times faster on a VM with costly page faults).
ENV NODE_ENV=production DATA_DIR=/data PORT=3000 NPM_CONFIG_UPDATE_NOTIFIER=false MALLOC_ARENA_MAX=1 \
  MALLOC_MMAP_THRESHOLD_=16777216 MALLOC_TRIM_THRESHOLD_=33554432 GLIBC_TUNABLES=glibc.malloc.hugetlb=1
RUN groupadd --system app \
  && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app \
  && mkdir -p /data \
  && chown app:app /data
# The code stays owned by root: the server can read it, not change it.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY THIRD_PARTY_NOTICES.md ./
USER app
VOLUME /data
EXPOSE 3000
# Ready = database, Redis, storage and the moderation model, on whatever PORT the container is given.
# Three misses in a row (~90 s) mark it unhealthy: the built model loads in seconds.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/src/main.js"]

# syntax=docker/dockerfile:1
# The llmroute image: one image for the controller (`llmroute controller`, installed by charts/llmroute) and for the
# gateways it creates (`llmroute gateway`).
#
#   docker build -t ghcr.io/llmroute/llmroute:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Both stages use the same base, so the runtime has exactly the Node.js and glibc the build used. In CI pin it by
# digest (--build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:...) and let a bot bump it.
#
# Why node:24-bookworm-slim rather than distroless (gcr.io/distroless/nodejs24-debian12): `node` is on PATH, so the
# entrypoint is the plain `node /app/bin/llmroute.js` the docs show; the runtime is byte-for-byte the one the build
# stage ran; and `kubectl debug` / `kubectl exec` still have a shell when an incident needs one. What distroless would
# remove matters less here: the package managers npm, corepack and yarn are deleted below, the image has no compiler,
# and the pods run non-root with a read-only root filesystem, no capabilities and no privilege escalation.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: install every dependency, compile TypeScript, then drop the devDependencies. ----------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# --ignore-scripts: the only install scripts in the lockfile belong to dev tools (@swc/core, esbuild, @parcel/watcher)
# that the compile does not need, and it also skips `prepare`; the compile runs explicitly below, once.
# `npm install` rather than `npm ci`: the lockfile is made where some platforms' optional binaries are not served,
# so it cannot list them and `npm ci` would refuse it; `npm install` still installs exactly the locked versions.
RUN --mount=type=cache,target=/root/.npm npm install --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY bin/ bin/
COPY crds/ crds/
COPY src/ src/
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts

# --- runtime: the compiled code and production node_modules, nothing else. ------------------------------------------
FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG NODE_IMAGE
LABEL org.opencontainers.image.title="llmroute" \
      org.opencontainers.image.description="Kubernetes operator and OpenAI-compatible LLM gateway" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/llmroute/llmroute" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
# No package managers at runtime; the "nonroot" user (uid/gid 65532, as in distroless) that the chart and the rendered
# gateway pods run as.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
WORKDIR /app
# Owned by root and not writable by the runtime user. /tmp is the only writable path (an emptyDir in the pods).
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/build/ build/
COPY --from=build /src/bin/ bin/
COPY --from=build /src/crds/ crds/
ENV NODE_ENV=production HOME=/tmp
# Numeric, so the kubelet can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
# Node is PID 1: the controller and the gateway handle SIGTERM themselves (release the lease, drain connections).
ENTRYPOINT ["node", "/app/bin/llmroute.js"]

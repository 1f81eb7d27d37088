# The gateway and the workers: one image, the command picks the process.
FROM oven/bun:1.4.5-slim AS deps
WORKDIR /app
COPY package.json bun.lock bunfig.toml ./
COPY patches ./patches
RUN bun install --frozen-lockfile --production

FROM oven/bun:1.4.5-slim
WORKDIR /app
ENV NODE_ENV=production DATA_DIR=/data
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bun.lock bunfig.toml tsconfig.json start.ts ./
COPY patches ./patches
COPY api ./api
COPY workers ./workers
COPY generators ./generators
COPY lib ./lib
COPY sql ./sql
COPY openapi ./openapi
RUN mkdir -p /data && chown bun:bun /data
USER bun
EXPOSE 3000
CMD ["bun", "run", "api/main.ts"]

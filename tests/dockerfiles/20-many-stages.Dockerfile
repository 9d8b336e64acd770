FROM debian:bookworm AS base
FROM base AS deps
RUN echo deps
FROM base AS test
COPY --from=deps / /deps
RUN echo test
FROM base AS release
COPY --from=deps /etc/hostname /hostname
FROM release
LABEL stage=final

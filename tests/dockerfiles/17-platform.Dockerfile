FROM --platform=$BUILDPLATFORM debian:bookworm AS build
ARG TARGETARCH
RUN echo $TARGETARCH > /arch
FROM --platform=linux/amd64 debian:bookworm
COPY --from=build /arch /arch

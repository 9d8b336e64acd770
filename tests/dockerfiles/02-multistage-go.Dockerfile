# syntax=docker/dockerfile:1.4
ARG GO_VERSION=1.22
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM gcr.io/distroless/static AS final
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]

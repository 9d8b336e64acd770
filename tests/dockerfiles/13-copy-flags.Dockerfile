FROM alpine:3.19 AS src
FROM alpine:3.19
COPY --link --from=src /etc/os-release /tmp/
COPY --chmod=755 --chown=root:root entrypoint.sh /usr/local/bin/
COPY --exclude=*.md docs/ /docs/
COPY ["with space.txt", "/tmp/with space.txt"]

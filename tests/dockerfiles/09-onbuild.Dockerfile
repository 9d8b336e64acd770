FROM debian:bookworm
ONBUILD COPY . /app/src
ONBUILD RUN make -C /app/src
STOPSIGNAL SIGTERM
VOLUME ["/data", "/logs"]
VOLUME /cache

FROM debian:bookworm AS wheels
RUN mkdir /wheels
FROM debian:bookworm
RUN --mount=type=bind,from=wheels,source=/wheels,target=/tmp/wheels \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    ls /tmp/wheels
RUN --mount=type=tmpfs,target=/tmp/scratch,size=64m true
RUN --network=none echo offline

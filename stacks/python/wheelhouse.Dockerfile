FROM wheelbuild AS build
RUN --mount=type=bind,source=files/requirements.txt,target=/requirements.txt \
    --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels -r /requirements.txt

FROM scratch
COPY --from=build /wheels/ /

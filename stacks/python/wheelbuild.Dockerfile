FROM pybuild
RUN --mount=type=bind,from=python-deb,target=/deb \
    dpkg -i /deb/*.deb \
    && /opt/python/{{ versions[python].minor }}/bin/python3 -m venv /venv
{% include "fragments/python-env.Dockerfile" %}
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --upgrade pip wheel build
LABEL org.opencontainers.image.title="wheelbuild" io.kiln.python="{{ python }}" io.kiln.debian="{{ debian }}"

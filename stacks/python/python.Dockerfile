FROM debbase
RUN --mount=type=bind,from=python-deb,target=/deb \
    dpkg -i /deb/*.deb \
    && /opt/python/{{ versions[python].minor }}/bin/python3 -m venv /venv
{% include "fragments/python-env.Dockerfile" %}
LABEL org.opencontainers.image.title="python" io.kiln.python="{{ python }}" io.kiln.debian="{{ debian }}"
CMD ["python"]

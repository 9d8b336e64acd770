{#- Shared by every image that carries the packaged CPython. -#}
ENV PYTHON_VERSION={{ python }} \
    PATH=/venv/bin:/opt/python/{{ versions[python].minor }}/bin:$PATH \
    LANG=C.UTF-8

FROM python:3.11-slim
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=netrc,target=/root/.netrc,mode=0400 \
    pip install --no-cache-dir private-package
RUN --mount=type=secret,id=token,required=true cat /run/secrets/token >/dev/null

FROM debbase
RUN aptinstall build-essential dpkg-dev pkg-config xz-utils \
        libssl-dev libsqlite3-dev libffi-dev libbz2-dev liblzma-dev zlib1g-dev \
        libreadline-dev libncurses-dev libgdbm-dev uuid-dev libexpat1-dev
COPY --chmod=0755 files/build-python-deb /usr/local/bin/build-python-deb
LABEL org.opencontainers.image.title="pybuild" io.kiln.debian="{{ debian }}"

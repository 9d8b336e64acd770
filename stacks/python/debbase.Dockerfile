FROM debian
COPY files/dpkg-slim.cfg /etc/dpkg/dpkg.cfg.d/slim
COPY --chmod=0755 files/aptinstall /usr/local/bin/aptinstall
RUN aptinstall ca-certificates libssl3 libsqlite3-0 libffi8 libbz2-1.0 liblzma5 zlib1g \
        libreadline8 libncursesw6 libgdbm6 libuuid1 libexpat1 libnsl2 tzdata netbase
ENV LANG=C.UTF-8
LABEL org.opencontainers.image.title="debbase" io.kiln.debian="{{ debian }}"
CMD ["bash"]

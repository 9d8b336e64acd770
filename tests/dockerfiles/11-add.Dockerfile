FROM scratch
ADD rootfs.tar.xz /
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.invalid/file.tar.gz /tmp/
ADD --chown=1000:1000 --chmod=0644 conf/ /etc/app/
CMD ["/bin/sh"]

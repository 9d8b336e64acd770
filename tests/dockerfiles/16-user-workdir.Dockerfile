FROM debian:bookworm
WORKDIR /a
WORKDIR b
WORKDIR ../c
USER nobody:nogroup
RUN pwd

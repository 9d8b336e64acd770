ARG V=global
FROM debian:bookworm
RUN echo "$V"
ARG V
RUN echo "$V"
ARG V=local
RUN echo "$V"

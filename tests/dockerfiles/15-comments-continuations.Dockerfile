# leading comment
FROM debian:bookworm
# comment between
RUN apt-get update && \
    # a comment inside a continuation
    apt-get install -y \
      make \
    && true

RUN echo done

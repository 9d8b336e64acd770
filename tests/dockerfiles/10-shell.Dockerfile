FROM debian:bookworm
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN echo hi | tee /tmp/x
ENTRYPOINT exec top -b
CMD ["-n", "1"]

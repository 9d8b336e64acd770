FROM debian:bookworm
ENV A=1 B="two words" C='single $A' \
    D=$A E=${B}
ENV LEGACY value with spaces
ENV PATH=/opt/bin:$PATH

ARG REGISTRY=docker.io
ARG BASE_TAG=bookworm
FROM ${REGISTRY}/library/debian:${BASE_TAG} AS base
ARG BASE_TAG
ARG USER_ID=1000
ENV TAG=${BASE_TAG}
RUN useradd -u ${USER_ID} app
FROM base
ARG EXTRA
LABEL tag="${TAG}" extra=${EXTRA:-none}

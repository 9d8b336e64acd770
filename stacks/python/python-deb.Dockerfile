FROM pybuild AS build
RUN --mount=type=bind,from=python-source,target=/src \
    build-python-deb /src/{{ versions[python].orig }} {{ python }} {{ pkgrel }} {{ optimize }} /out

FROM scratch
COPY --from=build /out/ /

# syntax=docker/dockerfile:1
# MinIO for deploy/compose.yaml, built from the same pinned source as the
# binary deploy/stack.sh builds for tests and the fault suite (upstream
# publishes source only), static and unprivileged like fieldsyncd's image.

FROM golang:1.26-bookworm AS build
ENV CGO_ENABLED=0 GOBIN=/out
RUN go install -trimpath -ldflags="-s -w" github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c && mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/minio /usr/local/bin/minio
# A named volume mounted here starts with this folder's owner: MinIO's user.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/minio"]

# xserver binaries: mgrserver, and the echo and demo examples.
#   docker build -t xserver:dev .
# See docker-compose.yml for a cluster.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/... ./examples/...

FROM debian:bookworm-slim
# curl for health checks.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates curl \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --no-create-home xserver
# Appended to PATH so the example named "echo" does not shadow /bin/echo;
# run it by its full path.
COPY --from=build /out/ /opt/xserver/bin/
ENV PATH="${PATH}:/opt/xserver/bin"
USER xserver
EXPOSE 7300 7301
ENTRYPOINT ["/opt/xserver/bin/mgrserver"]

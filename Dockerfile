# xserver binaries: mgrserver and gateway, and the examples: login (with
# the browser client), lobby, match, bot, echo and demo.
#   docker build -t xserver:dev .
# The default entrypoint is the mgrserver; pick another binary with
# --entrypoint /opt/xserver/bin/<name>. See docker-compose.yml for a
# cluster and docs/OPERATIONS.md for running one.

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
# mgrserver 7300 (intranet) and 7301 (admin); gateway 7400 (client TCP),
# 7401 (intranet), 7402 (WebSocket), 7403 (admin); login 8080 (HTTP).
EXPOSE 7300 7301 7400 7401 7402 7403 8080
# SIGTERM stops every binary gracefully (a gateway drains its players).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/xserver/bin/mgrserver"]

# syntax=docker/dockerfile:1
FROM debian:bookworm
RUN <<EOF
apt-get update
apt-get install -y curl
EOF
COPY <<-"EOT" /etc/motd
	Welcome
EOT
RUN <<EOT bash
set -e
echo "$HOME"
EOT

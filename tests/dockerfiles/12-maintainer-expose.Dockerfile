FROM nginx:1.25
MAINTAINER Jane Doe <jane@example.com>
EXPOSE 80 443/tcp 53/udp 8000-8010
COPY nginx.conf /etc/nginx/nginx.conf

FROM redis:7
HEALTHCHECK NONE
HEALTHCHECK --interval=1m30s --start-period=5s CMD ["redis-cli", "ping"]

#!/bin/sh
# As the official image: with no config file given, serve every interface
# (Debian's default config is not read: the compose command passes its options).
set -e
if [ "$1" = "redis-server" ]; then
    shift
    exec redis-server --protected-mode no --bind '* -::*' "$@"
fi
exec "$@"

#!/bin/sh
# Create the cluster and the database on first start (POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB), then run the server in the foreground on PGPORT.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 \
        --auth-local=peer --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "CREATE DATABASE \"$POSTGRES_DB\"" | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -h "${PGHOST_LISTEN:-127.0.0.1}" -p "${PGPORT:-5432}" \
    -k /tmp -c max_connections="${PG_MAX_CONNECTIONS:-100}"

#!/usr/bin/env bash
# Run deploy/compose.yaml end to end under podman, then take it all down again.
#
#   make deploy-check            (or: bash deploy/check.sh [--rmi])
#
# As root on Debian 12: installs podman, runc and debootstrap if missing, makes the base image
# localhost/debian:bookworm (debootstrap from the Debian mirror + podman import) if missing,
# builds the three images, starts PostgreSQL + 2 replicas + nginx with podman-compose (PyPI,
# through uv), sends chat turns through the balancer, `podman kill`s replica 1 and sends turns,
# starts it again, SIGKILLs replica 2's server process (a crash) and sends turns while podman's
# restart policy brings it back, then sends more. On exit, even a failed one: the
# containers, the pod and the database volume are removed; the images are kept for the next
# run unless --rmi. Everything listens on 127.0.0.1 (network_mode: host); nothing else.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export CONTAINERS_CONF="$REPO/deploy/containers.conf"
UV=${UV:-$(command -v uv || echo "$REPO/.tools/bin/uv")}
PODMAN_COMPOSE=("$UV" tool run --from podman-compose==1.6.0 podman-compose -f deploy/compose.yaml)
BALANCER=http://127.0.0.1:18100
PORTS=(55432 18101 18102 18100)
REMOVE_IMAGES=0
[[ "${1:-}" == "--rmi" ]] && REMOVE_IMAGES=1

START=$(date +%s.%N)
step() { printf '\n[%6.1f s] %s\n' "$(echo "$(date +%s.%N) - $START" | bc)" "$*"; }
die() { echo "deploy-check: FAILED: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (podman runs rootful here)"
[[ -x "$UV" ]] || die "uv not found; run 'make install' first"

need=()
for tool in podman:podman runc:runc debootstrap:debootstrap curl:curl bc:bc; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    step "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
podman --version

for port in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is taken; deploy/compose.yaml and deploy/nginx.conf use ${PORTS[*]}"
    fi
done

export TASKAGENT_DB_PASSWORD TASKAGENT_API_KEYS
TASKAGENT_DB_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
KEY=$(python3 -c 'import secrets; print("tak_" + secrets.token_hex(24))')
TASKAGENT_API_KEYS="$KEY:demo:write"

ROOTFS=""
HEADERS=$(mktemp /tmp/taskagent-deploy-check.XXXXXX)
BUILD_LOG=$(mktemp /tmp/taskagent-deploy-build.XXXXXX)
cleanup() {
    local status=$?
    set +e
    if ((status != 0)); then
        podman ps -a --filter name=taskagent_ --format '{{.Names}}  {{.Status}}'
        for name in $(podman ps -a --filter name=taskagent_ --format '{{.Names}}'); do
            echo "--- $name (restarts: $(podman inspect --format '{{.RestartCount}}' "$name"))"
            podman logs --tail 15 "$name" 2>&1
        done
    fi
    step "cleanup: podman-compose down -v"
    "${PODMAN_COMPOSE[@]}" down -v >/dev/null 2>&1
    [[ -n "$ROOTFS" ]] && rm -rf "$ROOTFS"
    rm -f "$HEADERS" "$BUILD_LOG"
    if ((REMOVE_IMAGES)); then
        podman rmi localhost/taskagent-nginx:latest localhost/taskagent:latest \
            localhost/taskagent-postgres:latest localhost/debian:bookworm >/dev/null 2>&1
    fi
    left=$(podman ps -a --filter name=taskagent_ --format '{{.Names}}')
    [[ -z "$left" ]] || echo "still there: $left" >&2
    if ((status == 0)); then echo "deploy-check: OK"; else echo "deploy-check: FAILED" >&2; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! podman image exists localhost/debian:bookworm; then
    step "base image: debootstrap --variant=minbase bookworm + podman import"
    ROOTFS=$(mktemp -d /tmp/taskagent-rootfs.XXXXXX)
    debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian >"$BUILD_LOG" 2>&1 ||
        { tail -30 "$BUILD_LOG"; die "debootstrap failed"; }
    tar -C "$ROOTFS" -c . | podman import -q - localhost/debian:bookworm >/dev/null
    rm -rf "$ROOTFS"
    ROOTFS=""
fi

# The host's CA bundle is mounted for the build only (an HTTPS-intercepting proxy's CA, if any).
build=(podman build -q --network host)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
    build+=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg CA_BUNDLE=/run/host-ca.crt)
for image in taskagent:deploy/Containerfile taskagent-postgres:deploy/Containerfile.postgres \
    taskagent-nginx:deploy/Containerfile.nginx; do
    step "podman build localhost/${image%%:*}"
    "${build[@]}" -f "${image#*:}" -t "localhost/${image%%:*}:latest" . >"$BUILD_LOG" 2>&1 ||
        { tail -30 "$BUILD_LOG"; die "podman build ${image#*:} failed"; }
done

# PostgreSQL first: a replica that finds no database exits (podman restarts it, but the run
# is clearer and quicker without that).
step "podman-compose up -d postgres"
"${PODMAN_COMPOSE[@]}" up -d postgres >/dev/null 2>&1 || die "podman-compose up postgres failed"
deadline=$((SECONDS + 120))
until podman exec taskagent_postgres_1 pg_isready -q -h 127.0.0.1 -p 55432 2>/dev/null; do
    ((SECONDS < deadline)) || die "PostgreSQL did not accept connections within 120 s"
    sleep 0.2
done
step "PostgreSQL accepts connections; podman-compose up -d"
"${PODMAN_COMPOSE[@]}" up -d >/dev/null 2>&1 || die "podman-compose up failed"

wait_ok() {  # wait_ok URL SECONDS
    local deadline=$((SECONDS + $2))
    until curl -sf -m 1 -o /dev/null "$1/ok"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
for url in http://127.0.0.1:18101 http://127.0.0.1:18102 "$BALANCER"; do
    wait_ok "$url" 120 || { podman ps -a; die "$url/ok did not answer within 120 s"; }
done
step "up: both replicas and the balancer answer /ok"
podman ps --format '  {{.Names}}  {{.Image}}  {{.Status}}'

turn() {  # turn MESSAGE [THREAD_ID] -> prints a one-line summary, sets REPLY
    local body
    body=$(python3 -c 'import json,sys; d={"message":sys.argv[1]}; d.update({"thread_id":sys.argv[2]} if len(sys.argv)>2 and sys.argv[2] else {}); print(json.dumps(d))' "$@")
    local out code
    out=$(curl -s -m 60 -D "$HEADERS" -w '\n%{http_code} %{time_total}' -X POST "$BALANCER/chat" \
        -H "X-Api-Key: $KEY" -H 'content-type: application/json' -d "$body")
    code=$(tail -1 <<<"$out")
    REPLY=$(sed '$d' <<<"$out")
    UPSTREAM=$(tr -d '\r' <"$HEADERS" | sed -n 's/^[Xx]-[Uu]pstream: //p')
    [[ ${code%% *} == 200 ]] || die "POST /chat answered ${code%% *} (upstream: $UPSTREAM): $REPLY"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("  200 in %.3f s via %-33s %s" % (float(sys.argv[2]), sys.argv[3], d["message"].replace("\n"," | ")[:90]))' "$REPLY" "${code#* }" "$UPSTREAM"
}
back_in_rotation() {  # back_in_rotation PORT: turns until the balancer sends one to PORT again
    local deadline=$((SECONDS + 30))
    until [[ $UPSTREAM == "127.0.0.1:$1" ]]; do
        ((SECONDS < deadline)) || die "the balancer sent nothing to :$1 within 30 s"
        sleep 0.5
        turn "list my tasks" "$THREAD"
    done
}
thread_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["thread_id"])' "$REPLY"; }

step "POST /chat through the balancer"
turn "Create a high-priority task for the quarterly review due next Friday"
THREAD=$(thread_of)
echo "  thread $THREAD"
for _ in 1 2 3; do turn "list my tasks" "$THREAD"; done

step "POST /chat/stream through the balancer (SSE, proxy_buffering off)"
curl -sN -m 60 -D "$HEADERS" -X POST "$BALANCER/chat/stream" -H "X-Api-Key: $KEY" \
    -H 'content-type: application/json' \
    -d "{\"message\":\"what is due this week\",\"thread_id\":\"$THREAD\"}" >"$BUILD_LOG"
grep -q '^event: done' "$BUILD_LOG" || die "the stream had no done event: $(head -c 500 "$BUILD_LOG")"
echo "  $(grep -c '^event:' "$BUILD_LOG") events via $(tr -d '\r' <"$HEADERS" | sed -n 's/^[Xx]-[Uu]pstream: //p'):" \
    "$(sed -n 's/^event: //p' "$BUILD_LOG" | tr -d '\r' | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')"

step "podman kill taskagent_replica1_1 (SIGKILL to the container)"
podman kill taskagent_replica1_1 >/dev/null
podman ps -a --filter name=taskagent_replica --format '  {{.Names}}  {{.Status}}'
step "POST /chat through the balancer with replica 1 dead"
turn "Create a task to call the bank tomorrow" "$THREAD"
for _ in 1 2 3; do turn "list my tasks" "$THREAD"; done
grep -q TASK-0002 <<<"$REPLY" || die "the thread does not list the task created after the kill"

step "podman start taskagent_replica1_1 (a killed container stays down until started)"
podman start taskagent_replica1_1 >/dev/null
wait_ok http://127.0.0.1:18101 120 || die "replica 1 did not answer /ok within 120 s of its start"
step "replica 1 answers /ok again; turns until the balancer sends one to it"
back_in_rotation 18101

# A crash rather than an operator: SIGKILL the replica's own process (the container's pid 1,
# seen from the host); podman's restart policy (on-failure) starts the container again.
PID=$(podman inspect --format '{{.State.Pid}}' taskagent_replica2_1)
step "kill -9 $PID (replica 2's server process, as a crash would)"
kill -9 "$PID"
CRASHED=$SECONDS
step "POST /chat through the balancer while replica 2 is down"
turn "Mark TASK-0002 as done" "$THREAD"
for _ in 1 2; do turn "list my tasks" "$THREAD"; done
deadline=$((SECONDS + 120))
until [[ $(podman inspect --format '{{.RestartCount}}' taskagent_replica2_1) -ge 1 ]] &&
    curl -sf -m 1 -o /dev/null http://127.0.0.1:18102/ok; do
    ((SECONDS < deadline)) || die "podman did not bring replica 2 back within 120 s"
    sleep 0.2
done
step "replica 2 restarted by podman and answering /ok $((SECONDS - CRASHED)) s after the kill" \
    "(restart count $(podman inspect --format '{{.RestartCount}}' taskagent_replica2_1))"
back_in_rotation 18102
turn "list my tasks" "$THREAD"

step "the balancer's log: which replica answered each POST /chat"
podman logs taskagent_balancer_1 2>&1 | grep -E 'POST /chat|connect\(\) failed|live upstreams' |
    sed -E 's/, client: .*//; s/^/  /' 

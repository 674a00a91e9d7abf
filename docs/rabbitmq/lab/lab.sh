#!/usr/bin/env bash
# Private RabbitMQ 3.10.8 node (MQTT + auth_backend_http + management) with a fake
# HTTP auth service. Usage: lab.sh pki|config|start|stop|ctl ARGS...
# Everything lives under $LAB (default /tmp/rmq-lab/run). All ports < 32768.
set -euo pipefail
LAB=${LAB:-/tmp/rmq-lab/run}
HERE=$(cd "$(dirname "$0")" && pwd)   # authsrv.py lives beside this script
RMQ_BIN=/usr/lib/rabbitmq/bin
P_EPMD=${P_EPMD:-24369}; P_AMQP=${P_AMQP:-24672}; P_DIST=${P_DIST:-24673}
P_MQTT=${P_MQTT:-24883}; P_MQTTS=${P_MQTTS:-24884}; P_MGMT=${P_MGMT:-24615}; P_AUTH=${P_AUTH:-24080}
NODE=${NODE:-rmqlab@localhost}

rmq_env() {
  export HOME=$LAB/home
  export RABBITMQ_NODENAME=$NODE
  export RABBITMQ_MNESIA_BASE=$LAB/mnesia
  export RABBITMQ_LOG_BASE=$LAB/log
  export RABBITMQ_ENABLED_PLUGINS_FILE=$LAB/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$LAB/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$LAB/advanced.config
  export RABBITMQ_CONF_ENV_FILE=$LAB/rabbitmq-env.conf      # empty, hides /etc/rabbitmq/rabbitmq-env.conf
  export RABBITMQ_PID_FILE=$LAB/rmq.pid
  export RABBITMQ_NODE_PORT=$P_AMQP
  export RABBITMQ_DIST_PORT=$P_DIST
  export ERL_EPMD_PORT=$P_EPMD
  export ERL_EPMD_ADDRESS=127.0.0.1
  # keep the distribution listener on loopback too (default is 0.0.0.0)
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

pki() {
  local d=$LAB/pki; rm -rf "$d"; mkdir -p "$d/newcerts" "$LAB/www" "$LAB/crls"
  cd "$d"; : > index.txt; echo 1000 > serial; echo 1000 > crlnumber
  cat > ca.cnf <<CNF
[ca]
default_ca = lab
[lab]
dir = $d
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
default_md = sha256
default_days = 365
default_crl_days = 1
policy = anything
copy_extensions = copy
[anything]
commonName = supplied
organizationName = optional
[srv]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[cli]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
crlDistributionPoints = URI:http://127.0.0.1:$P_AUTH/files/ca.crl
CNF
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 365 -subj "/O=lab/CN=lab test CA" 2>/dev/null
  mk() { # name CN ext
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/O=acme/CN=$2" 2>/dev/null
    openssl ca -batch -config ca.cnf -extensions "$3" -in "$1.csr" -out "$1.pem" -notext 2>/dev/null
  }
  mk server localhost srv
  mk dev1 dev-1 cli
  mk dev2 dev-2 cli
  crl
}

crl() { # (re)issue the CRL: DER for HTTP (www/ca.crl), PEM in crls/ with hash names
  cd "$LAB/pki"
  openssl ca -config ca.cnf -gencrl -out crl.pem 2>/dev/null
  openssl crl -in crl.pem -outform DER -out "$LAB/www/ca.crl"
  rm -f "$LAB/crls"/*; cp crl.pem "$LAB/crls/ca.crl.pem"; cp ca.pem "$LAB/crls/ca.pem"
  local h; h=$(openssl crl -in crl.pem -noout -hash); cp crl.pem "$LAB/crls/$h.r0"
}

revoke() { cd "$LAB/pki"; openssl ca -config ca.cnf -revoke "$1.pem" 2>/dev/null; crl; }

config() { # config [none|http|dir]  -- CRL mode for the MQTT TLS listener
  local crl=${1:-none}
  mkdir -p "$LAB/home" "$LAB/log" "$LAB/mnesia"
  # NB: ssl_options in advanced.config REPLACES the whole list from rabbitmq.conf,
  # so with CRL checking every TLS option goes to advanced.config.
  local SSL_CONF="" cache=""
  case $crl in
    none) SSL_CONF="ssl_options.cacertfile = $LAB/pki/ca.pem
ssl_options.certfile   = $LAB/pki/server.pem
ssl_options.keyfile    = $LAB/pki/server.key
ssl_options.verify     = verify_peer
ssl_options.fail_if_no_peer_cert = true
"; echo '[].' > "$LAB/advanced.config" ;;
    http) cache='{ssl_crl_cache, {internal, [{http, 5000}]}}' ;;
    dir)  cache="{ssl_crl_hash_dir, {internal, [{dir, \"$LAB/crls\"}]}}" ;;
    *) echo "bad crl mode $crl"; return 1 ;;
  esac
  if [ "$crl" != none ]; then
    cat > "$LAB/advanced.config" <<ADV
[{rabbit, [{ssl_options, [{cacertfile, "$LAB/pki/ca.pem"},
                          {certfile,   "$LAB/pki/server.pem"},
                          {keyfile,    "$LAB/pki/server.key"},
                          {verify, verify_peer},
                          {fail_if_no_peer_cert, true},
                          {crl_check, ${CRL_CHECK:-peer}},
                          {crl_cache, $cache}]}]}].
ADV
  fi
  [ -f "$LAB/home/.erlang.cookie" ] || { head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 > "$LAB/home/.erlang.cookie"; chmod 400 "$LAB/home/.erlang.cookie"; }
  : > "$LAB/rabbitmq-env.conf"
  echo '[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_management].' > "$LAB/enabled_plugins"
  local A=http://127.0.0.1:$P_AUTH
  cat > "$LAB/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$P_AMQP
loopback_users = none
log.file.level = ${LOGLEVEL:-info}
log.console = false

auth_backends.1 = internal
auth_backends.2 = http
auth_http.http_method   = ${AUTH_METHOD:-post}
auth_http.user_path     = $A/auth/user
auth_http.vhost_path    = $A/auth/vhost
auth_http.resource_path = $A/auth/resource
auth_http.topic_path    = $A/auth/topic

$SSL_CONF
mqtt.listeners.tcp.1 = 127.0.0.1:$P_MQTT
mqtt.listeners.ssl.1 = 127.0.0.1:$P_MQTTS
mqtt.allow_anonymous = false
mqtt.ssl_cert_login  = true
ssl_cert_login_from  = common_name
mqtt.vhost    = /
mqtt.exchange = amq.topic

management.tcp.ip   = 127.0.0.1
management.tcp.port = $P_MGMT
CONF
}

authsrv() {
  [ -f "$LAB/authsrv.pid" ] && kill "$(cat "$LAB/authsrv.pid")" 2>/dev/null && sleep 0.3 || true
  AUTHSRV_LOG=$LAB/auth-requests.jsonl AUTHSRV_RULES=$LAB/rules.json AUTHSRV_WWW=$LAB/www \
    setsid python3 "$HERE/authsrv.py" "$P_AUTH" > "$LAB/authsrv.out" 2>&1 &
  echo $! > "$LAB/authsrv.pid"
}

start() {
  mkdir -p "$LAB"
  [ -f "$LAB/rules.json" ] || echo '{"rules": [], "default": {"/auth/user": "deny", "/auth/vhost": "deny", "/auth/resource": "deny", "/auth/topic": "deny"}}' > "$LAB/rules.json"
  authsrv
  rmq_env
  local t0; t0=$(date +%s.%N)
  setsid "$RMQ_BIN/rabbitmq-server" > "$LAB/server.out" 2>&1 &
  local pid=$!; echo $pid > "$LAB/server.sh.pid"
  for i in $(seq 1 120); do
    kill -0 $pid 2>/dev/null || { echo "rabbitmq-server died"; tail -30 "$LAB/server.out"; return 1; }
    if "$RMQ_BIN/rabbitmqctl" -q await_startup --timeout 5 >/dev/null 2>&1; then
      echo "node up after $(echo "$(date +%s.%N) - $t0" | bc) s"; 
      "$RMQ_BIN/rabbitmqctl" -q add_user admin adminpw >/dev/null 2>&1 || true
      "$RMQ_BIN/rabbitmqctl" -q set_user_tags admin administrator
      "$RMQ_BIN/rabbitmqctl" -q set_permissions -p / admin '.*' '.*' '.*'
      echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"; return 0
    fi
    sleep 0.5
  done
  echo "timeout"; return 1
}

alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop() {
  rmq_env
  local t0; t0=$(date +%s.%N)
  local epid; epid=$(ss -ltnpH "sport = :$P_EPMD" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  if [ -f "$LAB/server.sh.pid" ]; then
    local pid; pid=$(cat "$LAB/server.sh.pid")
    if alive "$pid"; then
      "$RMQ_BIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true
      for i in $(seq 1 120); do alive "$pid" || break; sleep 0.1; done
      # still there: the node runs in its own session (setsid), end that process group only
      alive "$pid" && { kill -- -"$pid" 2>/dev/null; sleep 1; } || true
    fi
    rm -f "$LAB/server.sh.pid"
  fi
  # the epmd this node started (listens on $P_EPMD only); it is reparented to PID 1
  if [ -n "$epid" ]; then
    kill "$epid" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$epid" || break; sleep 0.1; done
  fi
  if [ -f "$LAB/authsrv.pid" ]; then
    local apid; apid=$(cat "$LAB/authsrv.pid"); kill "$apid" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$apid" || break; sleep 0.1; done
    rm -f "$LAB/authsrv.pid"
  fi
  echo "stopped in $(echo "$(date +%s.%N) - $t0" | bc) s"
}

ctl() { rmq_env; "$RMQ_BIN/rabbitmqctl" "$@"; }

cmd=${1:?}; shift
"$cmd" "$@"

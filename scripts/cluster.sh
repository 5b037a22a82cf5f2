#!/usr/bin/env bash
# A local three-broker Sluice cluster on 127.0.0.1, for development.
#
#   scripts/cluster.sh start          build, then start brokers 1-3 in the background
#   scripts/cluster.sh stop           stop them (SIGTERM, then wait)
#   scripts/cluster.sh restart N      stop broker N and start it again on the same data
#   scripts/cluster.sh kill N         kill -9 broker N (a crash)
#   scripts/cluster.sh start-one N    start broker N alone (after stop or kill)
#   scripts/cluster.sh status         which brokers run, with their PIDs
#
# Broker N (1-3): Kafka 127.0.0.1:909(1+N), raft 127.0.0.1:919(1+N),
# HTTP 127.0.0.1:964(3+N); data in $CLUSTER_DIR/nodeN, log in
# $CLUSTER_DIR/nodeN.log, PID in $CLUSTER_DIR/nodeN.pid.
# The three are the controller voters; topics default to replication
# factor 3. A fresh directory bootstraps a new cluster; an existing one
# restarts that cluster.
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER_DIR=${CLUSTER_DIR:-./data/cluster}
BIN=${BIN:-./bin/sluiced}
VOTERS="1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"

pidfile() { echo "$CLUSTER_DIR/node$1.pid"; }

running() {
	local f; f=$(pidfile "$1")
	[[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

start_one() {
	local n=$1
	if running "$n"; then
		echo "broker $n already runs (pid $(cat "$(pidfile "$n")"))"
		return
	fi
	mkdir -p "$CLUSTER_DIR/node$n"
	"$BIN" --node-id "$n" --data-dir "$CLUSTER_DIR/node$n" \
		--kafka-addr "127.0.0.1:$((9091 + n))" --raft-addr "127.0.0.1:$((9191 + n))" \
		--http-addr "127.0.0.1:$((9643 + n))" --controller-voters "$VOTERS" \
		--default-replication-factor 3 --log-format json \
		>>"$CLUSTER_DIR/node$n.log" 2>&1 &
	echo $! >"$(pidfile "$n")"
	echo "broker $n: pid $!, kafka 127.0.0.1:$((9091 + n)), log $CLUSTER_DIR/node$n.log"
}

wait_ready() {
	local n=$1
	for _ in $(seq 1 100); do
		if curl -fsS "http://127.0.0.1:$((9643 + n))/readyz" >/dev/null 2>&1; then
			return 0
		fi
		running "$n" || { echo "broker $n exited; see $CLUSTER_DIR/node$n.log" >&2; return 1; }
		sleep 0.2
	done
	echo "broker $n not ready after 20s; see $CLUSTER_DIR/node$n.log" >&2
	return 1
}

stop_one() {
	local n=$1 f pid
	f=$(pidfile "$n")
	if ! running "$n"; then
		rm -f "$f"
		return
	fi
	pid=$(cat "$f")
	kill -TERM "$pid"
	for _ in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "broker $n (pid $pid) ignored SIGTERM for 30s; killing it" >&2
		kill -KILL "$pid"
	fi
	rm -f "$f"
	echo "broker $n stopped"
}

check_n() {
	[[ ${1:-} =~ ^[123]$ ]] || { echo "usage: $0 $2 N   (N is 1, 2 or 3)" >&2; exit 2; }
}

case "${1:-}" in
start)
	[[ -x $BIN && ${SKIP_BUILD:-} == 1 ]] || go build -o bin/ ./cmd/sluiced
	for n in 1 2 3; do start_one "$n"; done
	for n in 1 2 3; do wait_ready "$n"; done
	echo "cluster ready: bootstrap servers 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
	;;
stop)
	for n in 1 2 3; do stop_one "$n"; done
	;;
restart)
	check_n "${2:-}" restart
	stop_one "$2"
	start_one "$2"
	wait_ready "$2"
	;;
kill)
	check_n "${2:-}" kill
	if running "$2"; then
		kill -KILL "$(cat "$(pidfile "$2")")"
		rm -f "$(pidfile "$2")"
		echo "broker $2 killed"
	fi
	;;
start-one)
	check_n "${2:-}" start-one
	start_one "$2"
	wait_ready "$2"
	;;
status)
	for n in 1 2 3; do
		if running "$n"; then echo "broker $n: running, pid $(cat "$(pidfile "$n")")"; else echo "broker $n: stopped"; fi
	done
	;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac

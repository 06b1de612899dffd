#!/usr/bin/env bash
# Three quorum-kv processes on loopback: elect, write, kill -9 the leader, show the new leader
# and read back every acknowledged write; then a restart with the wrong cluster secret is
# refused (with log lines saying so), a restart with the right one catches up, and a 4 GiB
# length prefix sent to a node is refused without harm. Exits non-zero if anything is off; ctest
# runs it as the real-process integration test.
#   examples/kv/demo.sh path/to/quorum-kv [work-dir]     (QUORUM_KV_WRITES: writes, default 200)
set -euo pipefail
BIN=$(realpath "${1:?usage: demo.sh path/to/quorum-kv [work-dir]}")
WORK=${2:-kv-demo.data}
WRITES=${QUORUM_KV_WRITES:-200}
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(realpath "$WORK")

# Ports below the kernel's ephemeral range (32768 and up on Linux): an outgoing connection of a
# test running alongside can take any port in that range, and did (node 1 failed to bind).
base=$((20000 + RANDOM % 12000))
cluster="1=127.0.0.1:$((base + 1)),2=127.0.0.1:$((base + 2)),3=127.0.0.1:$((base + 3))"
printf 'the kv demo cluster secret, 32+ bytes\n' >"$WORK/secret"
printf 'another secret that is not the one\n' >"$WORK/wrong-secret"
declare -A pid=()

say() { printf '\n== %s\n' "$*"; }
fail() {
  printf '\nFAILED: %s\n' "$*" >&2
  for id in 1 2 3; do
    [[ -f $WORK/node-$id.log ]] && { echo "--- node $id log (tail)" >&2; tail -n 20 "$WORK/node-$id.log" >&2; }
  done
  exit 1
}
start() {  # start ID [SECRET_FILE]
  local id=$1 secret=${2:-$WORK/secret}
  "$BIN" serve --id "$id" --cluster "$cluster" --client "127.0.0.1:$((base + 10 + id))" \
    --data "$WORK/node-$id" --secret-file "$secret" 2>>"$WORK/node-$id.log" &
  pid[$id]=$!
}
stop_all() {
  for id in "${!pid[@]}"; do kill -9 "${pid[$id]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
kv() {  # kv ID COMMAND...: the node's answer (fails if it does not answer)
  local id=$1
  shift
  "$BIN" client "127.0.0.1:$((base + 10 + id))" "$@" 2>/dev/null
}
field() { awk -v f="$1" '{ for (i = 1; i < NF; i++) if ($i == f) print $(i + 1) }'; }
find_leader() {  # prints the id of a leader that the live nodes agree on, within ~10 s
  for _ in $(seq 1 200); do
    for id in "${!pid[@]}"; do
      local l
      l=$(kv "$id" STATUS | field leader) || continue
      if [[ -n $l && $l != 0 && -n ${pid[$l]:-} ]] && [[ $(kv "$l" STATUS | field leader) == "$l" ]]; then
        echo "$l"
        return 0
      fi
    done
    sleep 0.05
  done
  return 1
}

say "starting three nodes (peers on ports $((base + 1))-$((base + 3)), clients on $((base + 11))-$((base + 13)))"
for id in 1 2 3; do start "$id"; done
leader=$(find_leader) || fail "no leader elected"
echo "node $leader is the leader"

say "writing $WRITES keys through the leader (each acknowledged once durable on a majority)"
acked=0
for i in $(seq 1 "$WRITES"); do
  for _ in $(seq 1 50); do
    if answer=$(kv "$leader" PUT "key$i" "value$i") && [[ $answer == OK* ]]; then
      acked=$((acked + 1))
      break
    fi
    leader=$(find_leader) || fail "lost the leader while writing"
  done
done
[[ $acked == "$WRITES" ]] || fail "only $acked of $WRITES writes were acknowledged"
echo "$acked writes acknowledged; last at index $(kv "$leader" STATUS | field applied)"

say "kill -9 the leader (node $leader, pid ${pid[$leader]})"
killed=$leader
kill -9 "${pid[$killed]}"
wait "${pid[$killed]}" 2>/dev/null || true
unset "pid[$killed]"
leader=$(find_leader) || fail "no new leader after the kill"
echo "node $leader is the new leader"

say "reading every acknowledged key back (linearizable reads through node $leader)"
for i in $(seq 1 "$WRITES"); do
  answer=$(kv "$leader" GET "key$i") || fail "GET key$i got no answer"
  [[ $answer == "VALUE value$i" ]] || fail "key$i: expected 'VALUE value$i', got '$answer'"
done
echo "all $WRITES keys read back"
kv "$leader" PUT after-failover yes >/dev/null || fail "a write after the failover failed"

say "restarting node $killed with the wrong cluster secret: it must be refused"
start "$killed" "$WORK/wrong-secret"
refused=""
for _ in $(seq 1 100); do
  if grep -h "authentication failed" "$WORK"/node-*.log >/dev/null 2>&1; then refused=yes; break; fi
  sleep 0.05
done
[[ -n $refused ]] || fail "no node logged the refused authentication"
grep -h "authentication failed\|before it authenticated" "$WORK"/node-*.log | sort -u | head -n 4
[[ $(kv "$killed" STATUS | field leader) == 0 ]] || fail "the node with the wrong secret found a leader"
echo "node $killed knows no leader: nothing reached it"
kill -9 "${pid[$killed]}"
wait "${pid[$killed]}" 2>/dev/null || true
unset "pid[$killed]"

say "restarting node $killed with the right secret: it catches up from its own log"
start "$killed"
target=$(kv "$leader" STATUS | field applied)
caught_up=""
for _ in $(seq 1 200); do
  applied=$(kv "$killed" STATUS | field applied) || applied=0
  if [[ -n $applied && $applied -ge $target ]]; then caught_up=yes; break; fi
  sleep 0.05
done
[[ -n $caught_up ]] || fail "node $killed did not catch up to index $target"
echo "node $killed applied up to $applied (leader at $target)"
[[ $(kv "$killed" GET after-failover) == "VALUE yes" ]] || fail "node $killed cannot read the write made while it was down"

say "sending node $leader's peer port a frame header announcing a 4 GiB body"
exec 3<>"/dev/tcp/127.0.0.1/$((base + leader))"
printf '\x01\x02\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00' >&3
timeout 5 cat <&3 >/dev/null || fail "node $leader did not close the connection"
exec 3<&-
grep -q "frame longer than the cap" "$WORK/node-$leader.log" || fail "node $leader did not log the refusal"
grep -h "frame longer than the cap" "$WORK/node-$leader.log" | tail -n 1
# It must still run and answer. (Leadership may move meanwhile on a loaded machine: the write
# goes through whichever node leads now.)
kill -0 "${pid[$leader]}" 2>/dev/null || fail "node $leader died"
kv "$leader" STATUS >/dev/null || fail "node $leader stopped serving"
now=$(find_leader) || fail "no leader after the oversized frame"
kv "$now" PUT still-serving yes >/dev/null || fail "node $now refused a write"
echo "node $leader refused it and still serves"

say "stopping"
for id in "${!pid[@]}"; do kill -TERM "${pid[$id]}"; done
wait || true
pid=()
rm -rf "$WORK"
echo "demo passed: $WRITES acknowledged writes survived kill -9 of the leader"

EXP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd); : "${LAB:=/tmp/rmq-lab/run}"; export LAB
# usage: exp "title" 'rules-json' mq.py-args...
exp() {
  local title=$1 rules=$2; shift 2
  echo "=== $title"
  echo "$rules" > $LAB/rules.json
  touch $LAB/auth-requests.jsonl; local N; N=$(wc -l < $LAB/auth-requests.jsonl)
  echo "--- client: mq.py $*"
  python3 $EXP_DIR/mq.py "$@"
  echo "--- auth requests:"
  python3 $EXP_DIR/showlog.py $N
}
ALLOW_REST='{"path": "/auth/vhost", "body": "allow"}, {"path": "/auth/resource", "body": "allow"}, {"path": "/auth/topic", "body": "allow"}'

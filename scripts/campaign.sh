#!/bin/sh
# The committed campaign, one slice: the reproduction (results/reproduction) until its 1,800
# trials are complete, then the gated-RNN family (results/family) on the same 200
# configurations, each with the command its results/*/README.md gives, until SECONDS from now.
# Each study's log is the next results/<study>/run-<n>.log. Run it from the repository root;
# PYTHON names the interpreter (default: python). A study that is complete returns at once.
#
#   scripts/campaign.sh SECONDS path/to/jsb-chorales-quarter.pkl
set -eu
if [ $# -ne 2 ]; then
    echo "usage: scripts/campaign.sh SECONDS DATA (DATA: the JSB pickle of datasets/jsb-original)" >&2
    exit 2
fi
seconds=$1 data=$2
case $seconds in '' | *[!0-9]*)
    echo "scripts/campaign.sh: SECONDS must be a whole number of seconds, got '$seconds'" >&2
    exit 2 ;;
esac
[ -f "$data" ] || { echo "scripts/campaign.sh: no data file at $data" >&2; exit 2; }
end=$(( $(date +%s) + seconds ))
MIN_SLICE=600  # seconds: below this a study's slice would mostly start populations it cannot finish

complete() {  # complete <study folder>: its storage's COMPLETE trials (0 without a storage)
    "${PYTHON:-python}" -c 'import sqlite3, sys
try:
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=60)
    print(db.execute("select count(*) from trials where state = ?", ("COMPLETE",)).fetchone()[0])
except sqlite3.OperationalError:
    print(0)' "results/$1/study.db"
}

slice() {  # slice <study folder> <variants> <trials planned>: one `odyssey run` until `end`
    left=$(( end - $(date +%s) ))
    [ "$left" -ge "$MIN_SLICE" ] || return 0
    [ "$(complete "$1")" -lt "$3" ] || return 0
    n=$(( $(ls "results/$1"/run-*.log 2>/dev/null | wc -l) + 1 ))
    echo "$(date -u '+%F %T') results/$1: ${left} s, log results/$1/run-$n.log"
    "${PYTHON:-python}" -m study.cli run --benchmark jsb-original --data "$data" \
        --variants "$2" --trials 200 --preset paper --seed 0 --workers 2 \
        --time-limit "$left" --storage "sqlite:///results/$1/study.db" \
        >"results/$1/run-$n.log" 2>&1
}

slice reproduction all 1800
slice family GRU,MGU,minGRU,minLSTM,sLSTM,V-fb1 1200

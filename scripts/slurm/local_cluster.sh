#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, as CI and tests/test_slurm.py use it: munged,
# slurmctld and slurmd on this host, one partition `debug` with this machine's CPUs. Run as
# root (Debian or Ubuntu); it installs slurm-wlm and munge where missing, writes
# /etc/slurm/slurm.conf unless one is there, and returns once `sinfo` shows the node idle.
# Running it again on a cluster that is up changes nothing. Stop it with `scontrol shutdown`
# (both daemons) and `kill $(cat /run/munge/munged.pid)`.
#
# No cgroups (proctrack/linuxproc, task/none): containers seldom let a daemon manage them,
# and one node needs no fencing between jobs.
set -euo pipefail

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
conf=/etc/slurm/slurm.conf
if [ ! -e "$conf" ]; then
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # MB, below what slurmd sees
    mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    cat >"$conf" <<CONF
# Written by scripts/slurm/local_cluster.sh: one node, this host, no cgroups.
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to scontrol for 10 minutes (there is no accounting database).
MinJobAge=600
KillWait=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
fi

if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge
chown munge:munge /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged
fi

if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
    slurmctld
fi
if [ ! -e /run/slurmd.pid ] || ! kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null; then
    slurmd
fi

for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
    case "$state" in
        idle | mix | alloc) exit 0 ;;
        down* | drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "local_cluster.sh: node $host is not up after 60 s (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1

#!/usr/bin/env bash
# One-node SLURM on localhost for the integration test (root only; no systemd, no cgroups).
# SLURM_WITH_DBD=1 (default) adds MariaDB + slurmdbd so that sacct works; SLURM_FAKE_GPUS=N adds N fake GPUs.
# Pid files: /run/{slurmd,slurmctld,slurmdbd}.pid, /run/mysqld/mysqld.pid, /run/munge/munged.pid (.ci/slurm-down.sh).
set -euo pipefail
WITH_DBD=${SLURM_WITH_DBD:-1}
GPUS=${SLURM_FAKE_GPUS:-0}
pkgs="munge slurmctld slurmd slurm-client"
[ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
if ! command -v slurmctld >/dev/null || { [ "$WITH_DBD" = 1 ] && ! command -v slurmdbd >/dev/null; }; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
wait_for() { # wait_for WHAT TRIES CMD...: every probe capped at 5 s; fail loudly after TRIES
  local what=$1 n=$2
  shift 2
  for _ in $(seq "$n"); do
    timeout 5 "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "slurm-up: $what not ready; see /var/log/slurm/" >&2
  return 1
}
NODE=$(hostname -s)
CPUS=$(nproc)
MEM=$(($(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 85 / 100))

# configuration first: the client tools read slurm.conf too
ACCT="AccountingStorageType=accounting_storage/none"
if [ "$WITH_DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux"
fi
GRES_TYPES=""
GRES_NODE=""
rm -f /etc/slurm/gres.conf
if [ "$GPUS" -gt 0 ]; then
  GRES_TYPES="GresTypes=gpu"
  GRES_NODE="Gres=gpu:$GPUS"
  # each fake GPU needs its own device file; any character device will do (at most 4 here)
  devices=(/dev/null /dev/zero /dev/full /dev/urandom)
  for i in $(seq 0 $((GPUS - 1))); do echo "NodeName=$NODE Name=gpu File=${devices[$i]}"; done >/etc/slurm/gres.conf
fi
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
$ACCT
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
install -d /var/spool/slurmd
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* # no job state from an earlier cluster

# munge
[ -s /etc/munge/munge.key ] || mungekey --create
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged
wait_for munged 20 sh -c 'munge -n | unmunge'

# accounting
if [ "$WITH_DBD" = 1 ]; then
  install -d -o mysql -g mysql /run/mysqld
  /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file=/run/mysqld/mysqld.pid >/var/log/slurm/mariadb.log 2>&1 &
  wait_for mariadb 60 mariadb -e 'select 1'
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-ci';
              ALTER USER 'slurm'@'localhost' IDENTIFIED BY 'slurm-ci';
              CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  printf '%s\n' AuthType=auth/munge DbdHost=localhost DbdAddr=127.0.0.1 SlurmUser=slurm \
    LogFile=/var/log/slurm/slurmdbd.log PidFile=/run/slurmdbd.pid StorageType=accounting_storage/mysql \
    StorageHost=localhost StorageUser=slurm StoragePass=slurm-ci StorageLoc=slurm_acct_db >/etc/slurm/slurmdbd.conf
  chown slurm:slurm /etc/slurm/slurmdbd.conf
  chmod 600 /etc/slurm/slurmdbd.conf
  /usr/sbin/slurmdbd
  wait_for slurmdbd 60 sacctmgr -n list cluster
fi

# controller, then node
/usr/sbin/slurmctld
wait_for slurmctld 60 sh -c 'scontrol ping | grep -q UP'
/usr/sbin/slurmd
wait_for slurmd 60 sh -c '[ "$(sinfo -h -o %t)" = idle ]'
sinfo -o "%P %a %D %t %N %G"

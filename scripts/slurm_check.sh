#!/usr/bin/env bash
# The kit's Slurm path on a real Slurm: stand up a one-node Slurm on this machine (Debian's slurm-wlm and munge; the
# controller and the node on localhost) and run the smoke sweep through it, as the README's sweep command does.
# For a maintainer before a release; the CI tests check the job script the kit writes, without a Slurm.
#
#   sudo scripts/slurm_check.sh [--cores N] [--keep] [--dir DIR]
#
# Each of the sweep's two jobs asks for N CPUs (default 1). With N = the node's CPUs (--cores 2 on a 2-CPU machine)
# only one job fits: it runs both seeds one after the other and the other job never starts, so the check also sees a
# pending job cancelled at the end; with N = 1 both jobs run at once.
#
# Needs root and apt-get (Debian 12 / Ubuntu: it installs slurm-wlm and munge when missing), and ./run_all.sh's
# environment (set up on first use). It writes everything under DIR (default /tmp/medadv-slurm-check): slurm.conf
# (used through SLURM_CONF; /etc/slurm is not touched), the daemons' state and logs, and the sweep folder DIR/sweep.
# Then it checks what the kit promises: the sweep's exit status 0, both runs complete in sweep.json, the workers that
# ran them counted, one run at a time on each job's worker with the job's N CPUs as its torch threads, the jobs'
# resources (N CPUs, the walltime as written), the jobs' output in the sweep's jobs/
# and none in the current directory, every job that started ended COMPLETED with exit code 0, a job that never
# started (if any) CANCELLED, and notebook 90's replication table. It stops the daemons it started unless --keep.
# Exit status: 0 when every check holds, 1 when one fails (each printed), 2 when Slurm could not be stood up.
set -euo pipefail

kit="$(cd "$(dirname "$0")/.." && pwd)"
dir=/tmp/medadv-slurm-check
keep=0
cores=1
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --dir) dir="$2"; shift ;;
    --cores) cores="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "slurm_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm_check: run it as root (it installs Slurm and starts its daemons)." >&2
  exit 2
fi

say() { printf '\n== %s\n' "$*"; }
failures=0
check() {  # check "what" command...: prints ok / FAILED
  local what="$1"; shift
  if "$@"; then echo "ok      $what"; else echo "FAILED  $what"; failures=$((failures + 1)); fi
}

# --- 1. Slurm and munge ------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi
echo "slurm_check: $(dpkg-query -W -f '${Package} ${Version}' slurm-wlm 2>/dev/null || slurmctld -V)"

rm -rf "$dir"
mkdir -p "$dir"/ctld "$dir"/spool
started=()  # the pid files of the daemons this script started
stop_daemons() {
  if [ "$keep" -eq 1 ]; then
    echo "slurm_check: --keep: daemons left running (SLURM_CONF=$dir/slurm.conf; pid files ${started[*]})"
    return
  fi
  for pid_file in "${started[@]}"; do
    if [ -f "$pid_file" ]; then kill "$(cat "$pid_file")" 2>/dev/null || true; fi
  done
}
trap stop_daemons EXIT

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge
  chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  started+=(/run/munge/munged.pid)
fi
for _ in $(seq 30); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 1; done
munge -n | unmunge >/dev/null || { echo "slurm_check: munged does not answer" >&2; exit 2; }

cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 3 / 4 ))
cat > "$dir/slurm.conf" <<EOF
# A one-node Slurm for scripts/slurm_check.sh: controller and node on localhost, no cgroups, no accounting database.
ClusterName=medadvcheck
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=3600
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=check Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"

say "starting slurmctld and slurmd ($cpus CPUs, $memory_mb MB)"
slurmctld -f "$SLURM_CONF"
started+=("$dir/slurmctld.pid")
slurmd -f "$SLURM_CONF" -N localhost
started+=("$dir/slurmd.pid")
for _ in $(seq 60); do
  state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
  [ "$state" = "idle" ] && break
  sleep 1
done
sinfo
if [ "$(sinfo -h -n localhost -o %t)" != "idle" ]; then
  echo "slurm_check: the node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  exit 2
fi
probe=$(srun -N1 -n1 -t 1 hostname) || { echo "slurm_check: srun hostname failed" >&2; exit 2; }
echo "srun hostname: $probe"

# --- 2. The smoke sweep through Slurm --------------------------------------------------------------------------
sweep="$dir/sweep"
say "./run_all.sh --profile smoke --sweep 2 --cluster slurm (from $dir)"
cd "$dir"
set +e
"$kit/run_all.sh" --profile smoke --sweep 2 --run-dir "$sweep" --device cpu --cluster slurm --jobs 2 \
  --cluster-option cores="$cores" --cluster-option memory=3GB --cluster-option walltime=2:00:00 \
  --cluster-option 'scheduler_options={"host": "127.0.0.1"}' \
  --cluster-option 'worker_extra_args=["--host", "127.0.0.1"]' 2>&1 | tee "$dir/sweep.log"
status=${PIPESTATUS[0]}
set -e
sleep 2

# --- 3. What the kit promises ----------------------------------------------------------------------------------
say "checks"
py="$kit/.venv/bin/python"
check "the sweep's exit status is 0 (it was $status)" test "$status" -eq 0
check "sweep.json: both runs complete, the workers that ran them counted, $cores torch thread(s) a run, 2 jobs" \
  "$py" - "$sweep" "$cores" <<'EOF'
import json, sys
record = json.load(open(f"{sys.argv[1]}/sweep.json"))
runs, cluster = record["runs"], record["cluster"]
print("        sweep.json cluster:", cluster, "runs:", {k: (v["status"], v.get("worker")) for k, v in runs.items()})
workers = {r.get("worker") for r in runs.values()}
sys.exit(0 if all(r["status"] == "complete" for r in runs.values()) and len(runs) == 2
         and cluster["workers"] == len(workers) >= 1 and cluster["jobs"] == 2
         and cluster["threads_per_run"] == int(sys.argv[2]) else 1)
EOF
check "one run at a time on each job's worker" "$py" - "$sweep" <<'EOF'
import json, sys
from pathlib import Path
sweep = Path(sys.argv[1])
spans = {}
for name, run in json.loads((sweep / "sweep.json").read_text())["runs"].items():
    manifest = json.loads((sweep / name / "manifest.json").read_text())
    spans.setdefault(run["worker"], []).append((manifest["started"], manifest["finished"], name))
for worker, runs in sorted(spans.items()):
    runs.sort()
    print(f"        worker {worker}: " + ", ".join(f"{n} {a[11:19]}-{b[11:19]}" for a, b, n in runs))
sys.exit(0 if all(b1 <= a2 for rs in spans.values() for (_, b1, _), (a2, _, _) in zip(rs, rs[1:])) else 1)
EOF
check "the replication table was written" test -s "$sweep/tables/replication_effects.csv"
jobs=$(sed -n 's/.*JobId=\([0-9]*\) .*Name=dask-worker .*/\1/p' "$dir/jobcomp.log" 2>/dev/null | sort -u || true)
exists() { compgen -G "$1" >/dev/null; }
check "the jobs' output is in the sweep's jobs/ folder" exists "$sweep/jobs/dask-worker-*.out"
check "no slurm-N.out in the directory the sweep was started from" test -z "$(compgen -G "$dir/slurm-*.out")"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
for job in $jobs; do
  info=$(grep "JobId=$job " "$dir/jobcomp.log" | tail -1 || true)
  jobstate=$(field JobState "$info"); exitcode=$(field ExitCode "$info"); ncpus=$(field ProcCnt "$info")
  limit=$(scontrol show job "$job" 2>/dev/null | sed -n 's/.*TimeLimit=\([0-9:-]*\).*/\1/p' || true)
  echo "        job $job: $jobstate, exit code $exitcode, $ncpus CPU(s), time limit $limit"
  if exists "$sweep/jobs/dask-worker-$job.*"; then
    check "job $job started, and ended COMPLETED with exit code 0:0" test "$jobstate:$exitcode" = COMPLETED:0:0
  else
    check "job $job never started, and was CANCELLED" test "$jobstate" = CANCELLED
  fi
  check "job $job booked $cores CPU(s)" test "$ncpus" = "$cores"
  check "job $job has the walltime 2:00:00 as written (YAML 1.1 would read 7200)" test "$limit" = 02:00:00
done
check "2 jobs were submitted" test "$(wc -w <<<"$jobs")" -eq 2

say "result"
if [ "$failures" -eq 0 ]; then
  echo "slurm_check: every check holds (logs and the sweep in $dir)"
  exit 0
fi
echo "slurm_check: $failures check(s) FAILED (logs and the sweep in $dir)"
exit 1

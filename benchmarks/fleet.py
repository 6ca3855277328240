"""Fleet speed: opsplay against stock Ansible and the runbooks' manual loop, on the same lab hosts.

    .venv/bin/python benchmarks/fleet.py [--hosts 1,4,8] [--reps 3] [--at 8] [--ssh] [--out DIR]

For each lab size N (lab hosts started with `opsplay lab up --hosts N`, then one unmeasured weekly
so that no side pays the new hosts' first-run work), medians of --reps runs, the sides alternating
within each repetition, of:
  A    `opsplay maintenance weekly --env lab` (the product as shipped)
  B    the same playbook through plain `ansible-playbook`, stock settings (no opsplay ansible.cfg)
  RAW  the same playbook through `ansible-playbook` with opsplay's ansible.cfg and strategy
       (what opsplay runs, without the wrapper)
  C    a sequential shell loop of the runbooks' commands for the same procedures, one
       `podman exec` (or `ssh`, with --ssh) per command and host, as an operator would type them
With --ssh every run reaches the hosts over SSH (`opsplay lab up --ssh`), the production transport.
and once, at the size the targets name (--at, default 8 when measured, else the largest N): D,
`opsplay --help` against `python -c "import click"` and `opsplay run health` against RAW running
health.yml; peak controller memory (all processes of the run) of A, B and RAW. The ratios are
taken at that size. E is the per-host marginal cost (least-squares slope of time over all N) of
A and RAW.
Prints a table of wall times and ratios and, per size, the task executions of A's weekly (one
per task and host, from the runner's events; skips counted apart) and the controller's CPU per
host of A, B and RAW (user + sys of the run's process tree, divided by the hosts: how many hosts
one control node can maintain in a window); writes JSON and a PNG plot.
Ratios are taken within this one run, on the same hosts, so machine load affects both sides.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OPSPLAY = str(BIN / "opsplay")
PLAYBOOK = REPO / "playbooks" / "maintenance-weekly.yml"

# The runbooks' shell for the work of each role in the weekly schedule, one command per step as
# an operator types it (runbook 004's daily check script, 002's pg_dump / VACUUM / logrotate /
# certbot lines, 001's maintenance mode). A role missing here makes the benchmark refuse: C must do
# the same work as A.
RUNBOOK_COMMANDS: dict[str, list[str]] = {
    "health": [
        "df / | tail -1 | awk '{print $5}'",
        "free | grep Mem",
        "pg_isready -h 127.0.0.1 -p 5432",
        "curl -fsS -o /dev/null http://127.0.0.1/",
    ],
    "pg_backup": [
        "su postgres -c 'pg_dump -Fc postgres' > /var/tmp/postgres.dump",
        "ls -la /var/tmp/postgres.dump",
    ],
    "maintenance_mode": ["mkdir -p /var/lib/opsplay && touch /var/lib/opsplay/maintenance.flag"],
    "pg_maintenance": ["su postgres -c \"psql -qc 'VACUUM ANALYZE;'\""],
    "log_rotation": ["logrotate -d /etc/logrotate.conf 2>/dev/null"],
    "cert_renewal": ["certbot renew --no-random-sleep-on-renew -q"],
    # runbook 001's pre-maintenance checklist: a recent backup, disk space, no long transaction
    "preflight": [
        "ls -t /var/backups/postgresql/postgres | head -1",
        "df -h /",
        'su postgres -c "psql -Atc \\"SELECT count(*) FROM pg_stat_activity'
        " WHERE xact_start < now() - interval '5 minutes'\\\"\"",
    ],
    # runbook 004: Monday 02:00 `apt update && apt upgrade -y` (the lab's lists are not
    # refreshed by opsplay either: no `apt update` on either side)
    "security_updates": ["apt-get upgrade -y -q"],
}
# maintenance mode goes off again at the end of the window
CLOSING_COMMANDS = ["rm -f /var/lib/opsplay/maintenance.flag"]


def weekly_procedures(playbook: Path = PLAYBOOK) -> list[str]:
    """The roles the weekly playbook applies (following its imported playbooks), in order, once.
    Read as YAML (plays, their roles and their tasks, blocks included), so a comment or another
    key between a role's name and its entry point changes nothing."""
    import yaml

    roles: list[str] = []
    for play in yaml.safe_load(playbook.read_text(encoding="utf-8")) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            roles += weekly_procedures(playbook.parent / imported)
            continue
        for role in play.get("roles") or []:
            roles.append(role["role"] if isinstance(role, dict) else role)
        for section in ("pre_tasks", "tasks", "post_tasks"):
            roles += _task_roles(play.get(section) or [])
    return list(dict.fromkeys(roles))


def _task_roles(tasks: list[dict]) -> list[str]:
    found: list[str] = []
    for task in tasks:
        for section in ("block", "rescue", "always"):
            found += _task_roles(task.get(section) or [])
        for action in ("include_role", "import_role"):
            spec = task.get(f"ansible.builtin.{action}") or task.get(action)
            # closing a window a gone run left (tasks_from: recover): no runbook step does it
            if spec and spec.get("tasks_from") != "recover":
                found.append(spec["name"])
    return found


def timed(
    cmd: list[str], env: dict[str, str], cwd: Path | None = None, memory: bool = False
) -> tuple[float, int, float]:
    """Wall seconds, (optionally) the peak memory of the process tree in bytes, and the CPU
    seconds (user + sys) the process tree used on the controller.

    CPU comes from getrusage(RUSAGE_CHILDREN) around the run: the command and every descendant
    its processes waited for (ansible-playbook's forked workers, ansible-runner's child), not a
    process that left the tree without being waited for.

    Memory is the sum of each process's PSS (proportional set size): pages shared between
    processes (Ansible's forked workers share most of theirs with their parent) count once in
    total, split among the processes sharing them. Summed RSS would count them once per worker
    and so grow with the number of forks even when no memory is added."""
    import resource

    import psutil

    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += p.memory_full_info().pss
            except psutil.NoSuchProcess:
                break
            peak = max(peak, total)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    done.set()
    if memory:
        sampler.join()
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark: {' '.join(cmd[:4])}... failed ({proc.returncode}): "
            f"{err.strip().splitlines()[-1:] or ''}"
        )
    return elapsed, peak, cpu


def task_executions(state_dir: Path) -> dict[str, int]:
    """Task executions (one per task and host) of the newest opsplay run, from its runner
    events: every runner_on_* result, and how many of them were skips."""
    runs = sorted((state_dir / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    counts = {"total": 0, "skipped": 0}
    for path in runs[-1].glob("artifacts/*/job_events/*.json"):
        event = json.loads(path.read_text()).get("event", "")
        if event in RESULTS:
            counts["total"] += 1
            counts["skipped"] += event == "runner_on_skipped"
    return counts


RESULTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def environments(inventory_dir: Path, state_dir: Path) -> dict[str, dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPSPLAY_", "ANSIBLE_"))}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    from opsplay.content import ansible_cfg, collections_path, roles_dir
    from opsplay.state import private_dir
    from opsplay.strategy import choose

    strategy = choose("auto")
    opsplay_env = {
        **base,
        "OPSPLAY_INVENTORY_DIR": str(inventory_dir),
        "OPSPLAY_STATE_DIR": str(state_dir),
    }
    stock = {
        **base,
        "ANSIBLE_ROLES_PATH": str(roles_dir()),
        # the collection opsplay.ops (its modules), linked as the CLI links it
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path(private_dir(state_dir))),
    }
    raw = {**stock, "ANSIBLE_CONFIG": str(ansible_cfg())}
    if strategy.plugin_dir:
        raw.update(
            {"ANSIBLE_STRATEGY_PLUGINS": strategy.plugin_dir, "ANSIBLE_STRATEGY": strategy.name}
        )
    return {"A": opsplay_env, "B": stock, "RAW": raw}


def manual_loop(hosts: list[str], procedures: list[str], inventory: Path) -> list[str]:
    """The runbooks' commands, host after host; over ssh for the inventory's ssh hosts."""
    import shlex

    import yaml

    commands = []
    for procedure in procedures:
        if procedure not in RUNBOOK_COMMANDS:
            raise SystemExit(f"benchmark: no runbook commands for '{procedure}' (add them)")
        commands += RUNBOOK_COMMANDS[procedure]
    commands += CLOSING_COMMANDS
    ssh_hosts = yaml.safe_load(inventory.read_text())["all"].get("hosts") or {}
    steps = []
    for host in hosts:
        if host in ssh_hosts:
            v = ssh_hosts[host]
            prefix = (
                f"ssh -i {v['ansible_ssh_private_key_file']} -p {v['ansible_port']} "
                f"{v['ansible_ssh_common_args']} root@127.0.0.1"
            )
        else:
            prefix = f"podman exec {host} sh -c"
        steps += [f"{prefix} {shlex.quote(cmd)} >/dev/null" for cmd in commands]
    return ["bash", "-ec", "; ".join(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="1,4,8", help="lab sizes, e.g. 1,4,8,16")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--ssh", action="store_true", help="reach the hosts over SSH")
    parser.add_argument(
        "--at", type=int, help="size for the ratios, D and memory (default 8, else the largest)"
    )
    args = parser.parse_args()
    sizes = sorted({int(n) for n in args.hosts.split(",")})
    at_size = args.at or (8 if 8 in sizes else sizes[-1])
    if at_size not in sizes:
        parser.error(f"--at {at_size} is not among --hosts {args.hosts}")
    procedures = weekly_procedures()

    work = Path(tempfile.mkdtemp(prefix="opsplay-bench-"))
    inventory_dir = work / "inventories"
    shutil.copytree(
        REPO / "inventories" / "lab",
        inventory_dir / "lab",
        ignore=shutil.ignore_patterns("hosts.yml"),
    )
    envs = environments(inventory_dir, work / "state")
    lab_inventory = str(inventory_dir / "lab" / "hosts.yml")
    was_up = subprocess.run(
        ["podman", "ps", "-q", "--filter", "label=opsplay.lab=1"], capture_output=True, text=True
    ).stdout.strip()

    results: dict[str, object] = {
        "procedures": procedures,
        "reps": args.reps,
        "sizes": {},
        "transport": "ssh" if args.ssh else "podman",
    }
    lab_up = [OPSPLAY, "--inventory-dir", str(inventory_dir), "lab", "up"]
    if args.ssh:
        lab_up.append("--ssh")
    try:
        for n in sizes:
            subprocess.run(
                [*lab_up, "--hosts", str(n)],
                check=True,
                env=envs["A"],
                stdout=subprocess.DEVNULL,
            )
            hosts = [f"opsplay-lab-{i}" for i in range(1, n + 1)]
            runs = {
                "A": (
                    [OPSPLAY, "maintenance", "weekly", "--env", "lab", "--yes", "--json"],
                    envs["A"],
                ),
                "B": (
                    [str(BIN / "ansible-playbook"), "-i", lab_inventory, str(PLAYBOOK)],
                    envs["B"],
                ),
                "RAW": (
                    [str(BIN / "ansible-playbook"), "-i", lab_inventory, str(PLAYBOOK)],
                    envs["RAW"],
                ),
                "C": (manual_loop(hosts, procedures, Path(lab_inventory)), envs["B"]),
            }
            # Hosts just started do first-run work (the first backup, the first certificates):
            # one unmeasured weekly first, so no side pays it.
            timed(*runs["RAW"], cwd=work)
            # Every run starts in an empty directory (no ansible.cfg is picked up by B); the
            # sides alternate within each repetition, so a change of load hits all of them.
            measured: dict[str, list[tuple[float, int, float]]] = {name: [] for name in runs}
            for _ in range(args.reps):
                for name, (cmd, env) in runs.items():
                    measured[name].append(timed(cmd, env, cwd=work))
            row: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for name, samples_of in measured.items():
                samples = [m[0] for m in samples_of]
                row[name] = median(samples)
                cpu[name] = median([m[2] for m in samples_of])
                print(
                    f"N={n:<3} {name:<4} {row[name]:7.2f} s  "
                    f"({', '.join(f'{s:.2f}' for s in samples)})",
                    flush=True,
                )
            print(
                f"N={n:<3} controller CPU per host (user+sys of the run's process tree / {n}): "
                + ", ".join(f"{name} {cpu[name] / n:.2f} s" for name in ("A", "B", "RAW")),
                flush=True,
            )
            results.setdefault("controller_cpu_seconds_per_host", {})[n] = {  # type: ignore[union-attr]
                name: cpu[name] / n for name in ("A", "B", "RAW")
            }
            tasks = task_executions(work / "state")  # of A's last weekly at this size
            print(
                f"N={n:<3} A    {tasks['total']} task executions ({tasks['skipped']} skipped)",
                flush=True,
            )
            results.setdefault("task_executions", {})[n] = tasks  # type: ignore[union-attr]
            results["sizes"][n] = row  # type: ignore[index]
            if n != at_size:
                continue
            memory = {
                name: timed(*runs[name], cwd=work, memory=True)[1] for name in ("A", "B", "RAW")
            }
            health = str(REPO / "playbooks" / "health.yml")
            wrapper = median(
                [
                    timed(
                        [OPSPLAY, "run", "health", "--env", "lab", "--json"], envs["A"], cwd=work
                    )[0]
                    for _ in range(args.reps)
                ]
            )
            raw_health = median(
                [
                    timed(
                        [str(BIN / "ansible-playbook"), "-i", lab_inventory, health],
                        envs["RAW"],
                        cwd=work,
                    )[0]
                    for _ in range(args.reps)
                ]
            )

        click_import = median(
            [timed([sys.executable, "-c", "import click"], envs["B"])[0] for _ in range(15)]
        )
        help_time = median([timed([OPSPLAY, "--help"], envs["B"])[0] for _ in range(15)])
    finally:
        if not was_up:
            subprocess.run(
                [OPSPLAY, "--inventory-dir", str(inventory_dir), "lab", "down"],
                env=envs["A"],
                stdout=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)

    sizes_rows = results["sizes"]  # type: ignore[assignment]
    slope = {name: _slope(sizes, [sizes_rows[n][name] for n in sizes]) for name in ("A", "RAW")}
    at = sizes_rows[at_size]
    results.update(
        {
            "at_hosts": at_size,
            "ratios": {
                "A/B": at["A"] / at["B"],
                "A/C": at["A"] / at["C"],
                "help/import_click": help_time / click_import,
                "wrapper/raw (run health)": wrapper / raw_health,
                "marginal A/RAW": (slope["A"] / slope["RAW"]) if slope["RAW"] else None,
                "memory A/B": memory["A"] / memory["B"] if memory["B"] else None,
            },
            "seconds": {
                "help": help_time,
                "import_click": click_import,
                "run_health": wrapper,
                "raw_health": raw_health,
            },
            "marginal_seconds_per_host": slope,
            "peak_memory_bytes": memory,
        }
    )
    _print_table(results, sizes)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = args.out / f"fleet-{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2))
    png_path = args.out / f"fleet-{stamp}.png"
    _plot(results, sizes, png_path)
    print(f"\nwrote {json_path} and {png_path}")


def _slope(xs: list[int], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / den


def _print_table(results: dict, sizes: list[int]) -> None:
    print(
        f"\nweekly = {' + '.join(results['procedures'])} over {results['transport']}; "
        f"median of {results['reps']} runs"
    )
    print(
        f"{'hosts':>5} {'A opsplay':>10} {'B stock':>9} {'RAW':>7} {'C manual':>9} "
        f"{'A/B':>6} {'A/C':>6}"
    )
    for n in sizes:
        r = results["sizes"][n]
        print(
            f"{n:>5} {r['A']:>9.2f}s {r['B']:>8.2f}s {r['RAW']:>6.2f}s {r['C']:>8.2f}s "
            f"{r['A'] / r['B']:>6.2f} {r['A'] / r['C']:>6.2f}"
        )
    print(f"\nratios at N={results['at_hosts']}:")
    for name, value in results["ratios"].items():
        print(f"  {name:<26} {'n/a' if value is None else f'{value:.2f}'}")
    mem = results["peak_memory_bytes"]
    print(
        f"  peak controller memory (PSS): A {mem['A'] / 2**20:.0f} MiB, "
        f"B {mem['B'] / 2**20:.0f} MiB, RAW {mem['RAW'] / 2**20:.0f} MiB"
    )
    s = results["seconds"]
    print(
        f"  opsplay --help {s['help'] * 1000:.0f} ms, import click {s['import_click'] * 1000:.0f}"
        f" ms; run health {s['run_health']:.2f} s, raw {s['raw_health']:.2f} s"
    )


def _plot(results: dict, sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = {
        "A": "A: opsplay (shipped defaults)",
        "B": "B: stock ansible-playbook",
        "C": "C: manual shell loop (runbooks)",
    }
    for name, label in labels.items():
        ax.plot(sizes, [results["sizes"][n][name] for n in sizes], marker="o", label=label)
    ax.set_xlabel("lab hosts")
    ax.set_ylabel("wall time, s (median)")
    ax.set_title(
        f"maintenance weekly ({len(results['procedures'])} roles), over {results['transport']}"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()

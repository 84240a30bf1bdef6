"""``--launcher slurm|local``: a run's shards submitted as one job array through submitit, then one publish.

Array task K runs the same command with ``--shard K/N`` (K is the task's index in the array, the
``SLURM_ARRAY_TASK_ID`` Slurm gives it) and ``--no-publish``. Every shard merges what is in the run
folder when it ends, under the results lock, so once all tasks are done ``results.parquet`` is
complete; the submitting process waits for them and publishes the leaderboard once. ``local`` is
submitit's local executor: the shards as processes on this machine (what the tests use).
``pip install submitit`` (the ``slurm`` extra) is needed only here.
"""
from __future__ import annotations

from pathlib import Path

#: options of the submitting command that the array tasks must not repeat (name -> takes a value)
LAUNCH_OPTIONS = {"--launcher": True, "--shards": True, "--slurm": True, "--out": True, "--no-publish": False,
                  "--shard": True}


def task_argv(argv: list[str], out: Path) -> list[str]:
    """The command each array task runs: ``argv`` without the launcher's options, writing to ``out``."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = item.partition("=")
        if name in LAUNCH_OPTIONS:
            skip = LAUNCH_OPTIONS[name] and not eq
            continue
        kept.append(item)
    return [*kept, "--out", str(out), "--no-publish"]


def parse_options(text: str | None) -> dict:
    """``--slurm KEY=VALUE,...`` -> submitit parameters (numbers as numbers), e.g.
    ``slurm_partition=gpu,gpus_per_node=1,timeout_min=240``."""
    options = {}
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--slurm {item!r}: write KEY=VALUE (submitit parameters, e.g. timeout_min=240)")
        options[key] = int(value) if value.isdigit() else value
    return options


def run_shard(argv: list[str]) -> int:
    """What one array task executes (in its own process, on its node)."""
    from . import run

    status = run.main(argv)
    if status:
        raise RuntimeError(f"shard exited with status {status}: python -m benchmark.run {' '.join(argv)}")
    return status


def launch(argv: list[str], out: Path, shards: int, launcher: str, options: dict | None = None,
           log=print) -> list:
    """Submit ``shards`` array tasks of ``python -m benchmark.run argv`` writing to ``out``; wait for all.
    Returns the tasks' results; raises when submitit is missing or a task failed."""
    try:
        import submitit
    except ImportError:
        raise RuntimeError("--launcher needs submitit: pip install submitit (or the project's `slurm` extra)") from None
    out = Path(out).resolve()
    executor = submitit.AutoExecutor(folder=out / "submitit" / "%j", cluster=launcher)
    params = {"timeout_min": 24 * 60, "name": f"refsr-{out.name}", **(options or {})}
    if launcher == "slurm":
        params.setdefault("slurm_array_parallelism", shards)
    executor.update_parameters(**params)
    argv = task_argv(argv, out)
    tasks = executor.map_array(run_shard, [[*argv, "--shard", f"{k}/{shards}"] for k in range(shards)])
    log(f"submitted {shards} shard(s) as {launcher} job(s) {', '.join(t.job_id for t in tasks)}; "
        f"logs under {out / 'submitit'}")
    return [t.result() for t in tasks]


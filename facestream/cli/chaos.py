"""``facestream chaos``: the stack under random faults at load, and what survived."""

from __future__ import annotations

from pathlib import Path

import click

from facestream.cli.common import console, settings
from facestream.cli.main import main


@main.command()
@click.option("--minutes", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="how long the traffic runs")
@click.option("--faces", type=click.IntRange(min=2), default=50, show_default=True,
              help="simulated faces: half Mojo clients through two gateways, half edge producers to Kafka")
@click.option("--fps", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--faults", "per_kind", type=click.IntRange(min=1), default=5, show_default=True,
              help="faults of each kind (worker, sink, gateway, PostgreSQL)")
@click.option("--seed", type=int, default=None, help="replay a run's fault schedule [default: from the clock]")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/RELIABILITY.md"),
              show_default=True, help="Markdown file whose chaos section is replaced by this run's table")
@click.option("--database-url", default=None,
              help="use this PostgreSQL (never frozen) instead of an embedded one of the run's own")
@click.option("--keep-topics", is_flag=True, help="keep the run's topics and consumer groups for inspection "
              "[default: deleted once the verdict is in]")
def chaos(minutes: float, faces: int, fps: float, per_kind: int, seed: int | None, report: Path,
          database_url: str | None, keep_topics: bool) -> None:
    """Stream real landmarks for many faces while a seeded fault loop kills and restarts the
    worker, the sink and a gateway and freezes PostgreSQL; then check that nothing was lost,
    duplicated or reset. Uses KAFKA_BOOTSTRAP_SERVERS if set (two workers), else the embedded broker."""
    import logging
    import time

    from facestream.chaos.run import ChaosParams, run
    from facestream.chaos.table import render, write_block

    logging.getLogger("facestream.chaos").setLevel(logging.INFO)
    s = settings()
    quiet = min(40.0, minutes * 60 * 0.25)
    p = ChaosParams(minutes=minutes, faces=faces, fps=fps, per_kind=per_kind, seed=seed,
                    warmup_s=min(20.0, minutes * 60 * 0.15), quiet_s=quiet, keep_topics=keep_topics)
    work = s.data_dir / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    result = run(s, p, work_dir=work, database_url=database_url, progress=console.print)
    lines = render(result)
    console.print("\n".join(lines))
    write_block(report, lines)
    console.print(f"table written to {report}; logs under {work / 'logs'}")
    if not result.ok:
        raise click.ClickException("the chaos run found problems (the verdict row says which)")

"""The umbrella group: logging, and the help text every command lists under."""

from __future__ import annotations

import logging

import click

from infra.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default=lambda: Settings().log_format,
              show_default="text, or $FACESTREAM_LOG_FORMAT", type=click.Choice(["text", "json"]),
              help="json: one JSON object per line, for log collectors")
def main(log_level: str, log_format: str) -> None:
    """facestream: facial-expression analytics over Kafka.

    Settings come from the environment (see `facestream settings`); with no
    KAFKA_BOOTSTRAP_SERVERS the embedded broker on 127.0.0.1 is used.
    """
    handler = logging.StreamHandler()
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler])

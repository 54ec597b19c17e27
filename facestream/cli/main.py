"""The umbrella group: logging, and the help text every command lists under."""

from __future__ import annotations

import logging
import warnings

import click

from infra import native_noise
from infra.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="warning", show_default=True, envvar="FACESTREAM_LOG_LEVEL",
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default=lambda: Settings().log_format,
              show_default="text, or $FACESTREAM_LOG_FORMAT", type=click.Choice(["text", "json"]),
              help="json: one JSON object per line, for log collectors")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str) -> None:
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
    # Audit lines (keys created and revoked) are written whatever the log level.
    logging.getLogger("facestream.audit").setLevel(logging.INFO)
    # A pgserver dependency's notice, not ours, on machines without a login session.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # MediaPipe's and TFLite's own log lines go to the file descriptor; shown only when debugging.
    ctx.with_resource(native_noise.filtered(enabled=log_level != "debug"))

"""Commands for the models: pinned files, labelled datasets, training and the model card."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from facestream.cli.common import console, err
from facestream.cli.main import main
from vision.models import model_path

if TYPE_CHECKING:  # loaded when a command needs it: the CLI starts fast
    from training.dataset import LabelledDataset


@main.group()
def models() -> None:
    """Model files."""


@models.command("fetch")
@click.option("--media", is_flag=True, help="also fetch the real test and demo media")
def models_fetch(media: bool) -> None:
    """Fetch and verify MediaPipe's face_landmarker.task (and media), pinned by sha256, cached."""
    from infra import assets

    for asset in [assets.LANDMARKER, *(assets.MEDIA.values() if media else [])]:
        console.print(f"{assets.fetch(asset)}  sha256 {asset.sha256}")


DEFAULT_LABELLED = Path(".facestream") / "dataset" / "labelled.npz"


def _labelled(path: Path) -> LabelledDataset:
    """A labelled dataset, or a ClickException saying how to build it."""
    from training.dataset import LabelledDataset

    try:
        return LabelledDataset.load(path)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc


STUDENT = model_path("emotion_student")


@main.group()
def dataset() -> None:
    """Training data: landmarks, blendshapes and the image teacher beside people's labels."""


@dataset.command("build")
@click.option("--labelled", "labelled_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="a folder of photos with labels.csv (file, person, emotion and/or smile); repeatable")
@click.option("--jobs", default=min(2, os.cpu_count() or 1), show_default=True,
              help="processes (each loads the landmarker and the teacher)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED, show_default=True)
def dataset_build(labelled_dirs: tuple[Path, ...], jobs: int, out: Path) -> None:
    """Run the edge landmarker and the teacher over human-labelled photos (resumable: each
    image's result is cached by its sha256)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from infra.assets import cache_dir
    from training.dataset import LabelsError, build_labelled

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("landmarks + teacher", total=None)
        try:
            stats = build_labelled(list(labelled_dirs), out, cache_dir() / "labelled", jobs=jobs,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
        except (LabelsError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    for name, s in stats.items():
        console.print(f"{name}: {s['faces']} faces of {s['images']} images ({s['missed']} without a face)")
    console.print(f"wrote {out}")


IMAGE_HEAD = STUDENT.with_name("image_expression_head")


@main.command()
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED,
              show_default=True, help="a labelled dataset from `facestream dataset build --labelled`")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=STUDENT, show_default=True,
              help="writes OUT.onnx and OUT.json")
@click.option("--image-head-out", type=click.Path(dir_okay=False, path_type=Path), default=IMAGE_HEAD,
              show_default=True, help="the image path's head on the teacher's embedding")
@click.option("--seed", default=0, show_default=True)
def train(dataset_path: Path, out: Path, image_head_out: Path, seed: int) -> None:
    """Fit the landmark student, its cue heads and the image head to people's labels; export to ONNX."""
    from infra.assets import sha256_of
    from training.fit import TrainParams, save
    from training.fit import train as fit_all
    from training.image_head import fit_image_head, save_image_head

    ds = _labelled(dataset_path)
    params = TrainParams(seed=seed)
    provenance = {"dataset_sha256": sha256_of(dataset_path), "faces": len(ds), "people": len(set(ds.person)),
                  "seed": seed, "trainer": "facestream train (training/fit.py)",
                  "teacher": "vision/model_files/face_expression.onnx"}
    with err.status(f"training on {len(ds)} faces of {len(set(ds.person))} people"):
        models, features = fit_all(ds, params)
        save(models, out, provenance)
        save_image_head(fit_image_head(ds, features, seed=seed), image_head_out, provenance)
    console.print(f"wrote {out.with_suffix('.onnx')}, {image_head_out.with_suffix('.onnx')} and their .json")


DISTILLED = model_path("blendshapes_distilled")


@main.command()
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED,
              show_default=True, help="a labelled dataset from `facestream dataset build --labelled`")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=DISTILLED, show_default=True,
              help="writes OUT.onnx and OUT.json")
@click.option("--copies", default=6, show_default=True, help="moved copies of each training face")
@click.option("--seed", default=0, show_default=True)
def distill(dataset_path: Path, out: Path, copies: int, seed: int) -> None:
    """Train the small blendshape network on MediaPipe's outputs; judge it on held-out people."""
    import time

    from infra.assets import sha256_of
    from training.distill import DistillParams, save
    from training.distill import distill as run

    ds = _labelled(dataset_path)
    t0 = time.monotonic()
    with err.status("distilling") as status:
        student, figures = run(ds, DistillParams(copies=copies, seed=seed),
                               progress=lambda msg: status.update(f"[{time.monotonic() - t0:.0f} s] {msg}"))
        path = save(student, out, {"dataset_sha256": sha256_of(dataset_path), "trainer": "facestream distill "
                                   "(training/distill.py)", "teacher": "vision/model_files/face_blendshapes.onnx",
                                   **figures})
    for name in ("held_out_faces", "held_out_moved_copies", "held_out_video"):
        f = figures[name]
        console.print(f"{name.replace('_', ' ')}: {f['faces']} faces, mean abs diff {f['mean_abs_diff']:.4f} "
                      f"(worst blendshape {f['max_abs_diff_blendshape']:.4f})")
    console.print(f"wrote {path} and its .json")


@main.command()
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED,
              show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"), show_default=True)
@click.option("--copies", default=1, show_default=True, help="augmented copies per training row")
def evaluate(dataset_path: Path, out_dir: Path, copies: int) -> None:
    """Person-disjoint figures against people's labels; writes model_card.md and .json."""
    from training.evaluate import evaluate as run
    from training.model_card import write

    ds = _labelled(dataset_path)
    with err.status("evaluating") as status:
        figures = run(ds, dataset_path, copies=copies, progress=lambda msg: status.update(msg))
    md, js = write(figures, out_dir)
    s, im = figures["student"], figures["image"]
    console.print(f"student mean recall {s['mean_recall']:.3f}, agreement {s['teacher_agreement']:.3f}; "
                  f"image path mean recall {im['mean_recall']:.3f}; wrote {md} and {js}")

"""The Mojo path beside the device path: the same Faust worker on landmark-only frames (either
blendshape model) and on frames that carry the device's blendshapes, and how far the distilled
network moves what the worker reports."""

from __future__ import annotations

import uuid

import numpy as np

from bench.harness import OUT, ROOT, Figure, topic_settings
from bench.sections.processor import prefill, worker_rate
from infra.settings import Settings
from infra.topics import ensure_topics
from schemas import LandmarkFrame

PATHS = {"device blendshapes": (True, "distilled"), "landmarks only, distilled blendshapes": (False, "distilled"),
         "landmarks only, MediaPipe's blendshape network": (False, "exact")}


def bench_paths(base: Settings, frames: list[LandmarkFrame], copies: int = 32, repeats: int = 5) -> list[Figure]:
    """The same Faust worker on device frames and on landmark-only (Mojo) frames, with either
    blendshape model, alternating per round; and how far the distilled model moves what the
    worker reports on the real clip."""
    from processors.pipeline import FrameProcessor
    from training.fidelity import video_fidelity

    topics = {}
    for name, (device, _) in PATHS.items():
        s = topic_settings(base, uuid.uuid4().hex[:6])
        ensure_topics(s)
        topics[name] = (s, prefill(s, frames, copies, device))
    rates: dict[str, list[float]] = {name: [] for name in PATHS}
    for rep in range(repeats):
        for name, (_, model) in PATHS.items():
            s, n = topics[name]
            r = s.model_copy(update={"app_id": f"{s.app_id}-{rep}", "results_topic": f"{s.results_topic}-{rep}",
                                     "summaries_topic": f"{s.summaries_topic}-{rep}", "blendshapes": model})
            ensure_topics(r)
            last = rep == repeats - 1 and model == "distilled"
            tag = "device-blendshapes" if name == "device blendshapes" else "landmarks-only"
            rates[name].append(worker_rate(r, n, profile=OUT / f"worker-profile-{tag}.txt" if last else None)[0])
    out = [Figure("paths", f"Faust worker, {name}", float(np.median(v)), "frames/s",
                  note="median of %d: %s" % (repeats, ", ".join(f"{x:,.0f}" for x in v))) for name, v in rates.items()]
    device = rates["device blendshapes"]
    for name in list(PATHS)[1:]:
        ratios = [x / d for x, d in zip(rates[name], device)]
        target = "distilled" in name
        out.append(Figure("paths", f"Faust worker, {name} / device blendshapes", float(np.median(ratios)), "",
                          ">= 0.9" if target else "", float(np.median(ratios)) >= 0.9 if target else None,
                          "side by side per round: " + ", ".join(f"{x:.2f}" for x in ratios)))
    fid = video_fidelity(frames, FrameProcessor(blendshapes="exact"), FrameProcessor(blendshapes="distilled"))
    for kind in ("cue", "emotion"):
        values = fid["cues" if kind == "cue" else "emotions"]
        worst = max(values, key=values.get)
        out.append(Figure("paths", f"distilled vs MediaPipe's blendshapes: largest {kind} difference on the "
                          "real clip", fid[f"max_{kind}"], "mean abs", "<= 0.03", fid[f"max_{kind}"] <= 0.03,
                          f"{worst}; {fid['frames']} frames of WolfgangLanger_Pexels.mp4 (never trained on); "
                          + ", ".join(f"{k} {v:.4f}" for k, v in values.items())))
    return out + _card_fidelity()


def _card_fidelity() -> list[Figure]:
    """The model card's figures for the distilled network on labelled photos (``facestream
    evaluate``, people held out), beside the speed; none when the card predates it."""
    import json

    card = ROOT / "reports" / "model_card.json"
    d = json.loads(card.read_text()).get("distilled_blendshapes") if card.exists() else None
    if not d:
        return []
    held, student = d["moved_held_out"], json.loads(card.read_text())["student"]
    worst_e = max(held["emotions"], key=held["emotions"].get)
    worst_c = max(held["evidence"], key=held["evidence"].get)
    src = f"reports/model_card.json at {json.loads(card.read_text())['commit']}; {held['faces']} faces"
    return [
        Figure("paths", "distilled vs MediaPipe's blendshapes: largest emotion difference on labelled photos "
               "of people held out", held["emotions"][worst_e], "mean abs", "<= 0.03", held["emotions"][worst_e] <= 0.03,
               f"{worst_e}; {src}"),
        Figure("paths", "distilled vs MediaPipe's blendshapes: largest cue-evidence difference on labelled "
               "photos of people held out", held["evidence"][worst_c], "mean abs", "<= 0.03",
               held["evidence"][worst_c] <= 0.03, f"{worst_c}; {src}"),
        Figure("paths", "student mean recall fed distilled blendshapes (model card, 5 folds by person)",
               d["student"]["mean_recall"], "", f">= {student['mean_recall']:.3f} (with MediaPipe's)",
               d["student"]["mean_recall"] >= student["mean_recall"] - 1e-9,
               f"accuracy {d['student']['accuracy']:.3f} ({student['accuracy']:.3f} with MediaPipe's); {src}"),
    ]

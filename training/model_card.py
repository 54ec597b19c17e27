"""``reports/model_card.md`` from the figures of ``training.evaluate.evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.vocabulary import EMOTIONS
from training.evaluate import SIX

TARGETS = {"student_mean_recall": 0.55, "student_smile": 0.92, "student_agreement": 0.80,
           "image_mean_recall": 0.60, "image_smile": 0.92}


def _ci(v: list[float]) -> str:
    return f"{v[0]:.3f}-{v[1]:.3f}"


def _row(name: str, s: dict) -> str:
    rec = " | ".join(f"{s['recall'][e]:.2f}" for e in SIX)
    return (f"| {name} | {s['mean_recall']:.3f} ({_ci(s['mean_recall_ci95'])}) | {rec} | {s['accuracy']:.3f} "
            f"({_ci(s['accuracy_ci95'])}) | {s['ece']:.3f} | {s['teacher_agreement']:.3f} |")


def _matrix(m: list[list[int]]) -> str:
    head = "| people \\ model | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
    return head + "".join(f"| **{EMOTIONS[i]}** | " + " | ".join(str(v) for v in row) + " |\n"
                          for i, row in enumerate(m) if sum(row))


def _verdict(value: float, target: float) -> str:
    return f"**met** ({value:.3f} >= {target})" if value >= target else \
        f"**missed by {target - value:.3f}** ({value:.3f} < {target})"


def _distilled(d: dict, s: dict, genki: float) -> str:
    """The section on the distilled blendshape network (empty when the card was made without it)."""
    if not d:
        return ""
    rows = []
    for name, key in (("people it never trained on", "blendshapes_held_out"), ("all faces", "blendshapes_all")):
        b = d[key]
        worst = ", ".join(f"{k} {v:.3f}" for k, v in list(b["worst"].items())[:3])
        rows.append(f"| {name} | {b['faces']} | {b['mean_abs_diff']:.4f} | {b['max_abs_diff_blendshape']:.4f} | {worst} |")
    moved = []
    for name, key in (("people it never trained on", "moved_held_out"), ("all faces", "moved_all")):
        m = d[key]
        moved.append(f"| {name} | {max(m['emotions'].values()):.4f} | "
                     + " | ".join(f"{v:.4f}" for v in m["evidence"].values()) + " |")
    ds, smile = d["student"], d["smile"].get("genki", {"accuracy": float("nan")})["accuracy"]
    return f"""
## Blendshapes: the distilled network (what the worker computes for landmark-only frames)
Mojo clients send no blendshapes; by default (`FACESTREAM_BLENDSHAPES=distilled`) the worker
computes them with a small network trained to reproduce MediaPipe's (`facestream distill`,
`training/distill.py`), not with MediaPipe's own. Judged against MediaPipe's network, per blendshape:

| faces | count | mean abs difference | worst blendshape (mean) | worst three |
|---|---|---|---|---|
{chr(10).join(rows)}

The student fed the distilled blendshapes instead of MediaPipe's (same folds, same models):
mean recall {ds['mean_recall']:.3f} (with MediaPipe's: {s['mean_recall']:.3f}), accuracy
{ds['accuracy']:.3f} ({s['accuracy']:.3f}), agreement with the teacher {ds['teacher_agreement']:.3f}
({s['teacher_agreement']:.3f}); smile accuracy on GENKI {smile:.3f} ({genki:.3f}).
How far its outputs move (mean absolute difference; the largest of the 7 emotions, then the
evidence behind each cue):

| faces | emotions (largest) | amusement | surprise | confusion | attention |
|---|---|---|---|---|---|
{chr(10).join(moved)}

Target: within 0.03 of MediaPipe's network. The session cues on the held-out demo clip are checked
by `tests/vision/features/test_blendshapes_distilled.py` and reported in `bench/results`.
"""


def model_card(f: dict) -> str:
    d, s, im, t, r = f["dataset"], f["student"], f["image"], f["teacher"], f["rules"]
    head = "| model | mean recall, six classes (95% CI over people) | " + " | ".join(SIX) + \
        " | accuracy (95% CI) | ECE | agreement with teacher |\n|---|---|" + "---|" * len(SIX) + "---|---|---|\n"
    main = head + "\n".join([_row("landmark student (Mojo path)", s), _row("image path (`/v1/faces`)", im),
                             _row("image teacher alone (face-api.js)", t), _row("rules on blendshapes", r)])
    per = ""
    for name, block in f["per_dataset"].items():
        per += f"\n### {name} ({d['per_dataset'][name]['faces']} faces, {d['per_dataset'][name]['people']} people)\n" + head
        per += "\n".join(_row(k, v) for k, v in block.items()) + "\n"
    variants = head.replace("| model |", "| student variant |") + "\n".join(_row(k, v) for k, v in f["variants"].items())
    smile_rows = []
    for model, per_set in f["smile"].items():
        for name, v in per_set.items():
            smile_rows.append(f"| {model} | {name} | {v['faces']} | {v['accuracy']:.3f} ({_ci(v['ci95'])}) |")
    cues = f["cues"]
    cue_rows = []
    for kind in ("learned", "rules"):
        for cue in ("amusement", "surprise", "confusion"):
            v = cues[kind][cue]
            cue_rows.append(f"| {cue} ({kind}) | " + " | ".join(f"{v.get(e, float('nan')):.3f}" for e in SIX)
                            + f" | {v['neutral_london']:.3f} |")
    slices = "\n".join(f"| {g} | {v['people']} | {v['student_smile_accuracy']:.3f} | {v['student_accuracy']:.3f} | "
                       f"{v['image_accuracy']:.3f} |" for g, v in f["london_slices"].items())
    genki = f["smile"]["student_amusement"].get("genki", {"accuracy": float("nan")})["accuracy"]
    image_genki = f["smile"]["image_happy"].get("genki", {"accuracy": float("nan")})["accuracy"]
    lat = f["latency"]
    distilled = _distilled(f.get("distilled_blendshapes") or {}, s, genki)
    return f"""# Model card: expressions from faces, judged against people's own labels

Generated by `facestream evaluate` from `{d['path']}` on commit `{f['commit']}`.
Machine: {f['machine']}.

## What is judged
- **Landmark student** (the Mojo path and edge devices): 7 emotion probabilities from landmarks only
  (the aligned 468-point mesh projected on its first principal components, and the 52 blendshapes),
  no pixels. Its two cue heads give amusement (P(joy) x (P(happy) / (P(happy) + P(sad)))^2 x (1 - P(neutral)),
  the probabilities the student's) and surprise.
- **Image path** (`POST /v1/faces`): face-api.js's expression network (the teacher) on the face
  crop, averaged half and half with a linear head fitted to people's labels on the teacher's
  own 256-d embedding.
- **Rules**: hand-written FACS-style rules on the blendshapes (`rules_baseline`).

Every figure is on people held out: {f['folds']} folds split by person, never by image; each
prediction comes from models fitted without that person. "Recall" and "accuracy" are against the
labels people gave; "agreement" is with the image teacher.

## Data
{d['faces']} faces of **{d['people']} distinct people**: {', '.join(f"{k} {v['faces']} faces / {v['people']} people" for k, v in d['per_dataset'].items())}.
Labels: {', '.join(f'{k} {v}' for k, v in d['labels'].items())}; smiles yes {d['smiles']['yes']}, no {d['smiles']['no']}.
Sources (shared data, not in this repository): muxspace facial_expressions (web photos, labels by
people; third-party images), the Face Research Lab London Set (DeBruine & Jones 2017, CC BY 4.0)
and MPLab GENKI-4K ("http://mplab.ucsd.edu, The MPLab GENKI-4K Dataset"). **Fear (18 faces) and
contempt (8) are too few to judge**: fear stays a class the models can output but no recall is
reported for it; contempt is not a class. The six judged classes are {', '.join(SIX)}.

## Emotions, all labelled faces
{main}

Targets: student mean recall {_verdict(s['mean_recall'], 0.55)}; student agreement with the teacher
{_verdict(s['teacher_agreement'], 0.80)}; image path mean recall {_verdict(im['mean_recall'], 0.60)}.
For scale: commercial classifiers scored 48-62% on posed and spontaneous faces (Dupre et al. 2020,
PLOS ONE 15(4): e0231968).
{per}
### Confusion, landmark student (rows: people's label)
{_matrix(s['confusion'])}
### Confusion, image path
{_matrix(im['confusion'])}
## Feature sets and model sizes (student, same folds)
"mesh" is the 468-point mesh aligned in 3D on its principal components plus the blendshapes;
"compact" is 40 hand-picked expression points plus the blendshapes; the "baseline" is the simple
landmark model of the project's design notes (the mesh aligned in the image plane, 60 principal
components, a class-balanced linear head; no blendshapes, no augmentation), which the shipped
student must beat.

{variants}

The larger heads agree more with the teacher and recall the rare classes less: with thousands of
people but only ~200 faces each of sad, angry, disgust and surprise, a hidden layer learns the
frequent classes and drifts to them on new people. What ships is the one with the best mean recall.

## Smiles (amusement >= 0.5, or P(happy) >= 0.5 for the image models)
| model | set | faces | accuracy (95% CI) |
|---|---|---|---|
{chr(10).join(smile_rows)}

Targets: student smile {_verdict(genki, 0.92)} (GENKI); image path smile {_verdict(image_genki, 0.92)} (GENKI).

## Mojo cues, mean per face by people's label
| cue | {' | '.join(SIX)} | London neutral |
|---|{'---|' * len(SIX)}---|
{chr(10).join(cue_rows)}

Surprise head: recall at 0.5 on surprised faces {cues['learned']['surprise_recall_at_0.5']:.3f},
false alarms on other labelled faces {cues['learned']['surprise_false_alarm_at_0.5']:.3f}.
Confusion has no labels anywhere: it stays the documented formula in `processors/cues.py`.
The video checks (crying, shocked and laughing segments of `WolfgangLanger_Pexels.mp4`) are tests
in `tests/processors/test_cues_on_faces.py`: amusement <= 0.20 (mean) while she cries and >= 0.80
while she laughs, both met. Surprise on her shocked segment reads ~0.2, **below the 0.5 asked**:
her hand covers her mouth, and the surprised faces people labelled mostly show a dropped jaw; a
head on the upper face alone reached 0.59 there but 0.39 on neutral faces, so it was not kept.

Chosen on these same folds (so slightly optimistic): the number of mesh components of the student
and the image head's blend weight and features; everything else was fixed beforehand.

## London Set slices (studio portraits, neutral and posed smile)
| slice | people | student smile accuracy | student accuracy (2 classes) | image accuracy |
|---|---|---|---|---|
{slices}

## Latency (this machine, onnxruntime CPU, 1 thread; mesh alignment + model, blendshapes given)
| batched ({lat['batch']} frames) | unbatched |
|---|---|
| {lat['batched_ms_per_frame']:.4f} ms/frame | {lat['unbatched_ms_per_frame']:.4f} ms/frame |

{distilled}
## What it must not be used for
- Deciding anything about a person: hiring, grading, policing, credit, insurance, medical or
  psychological assessment. A facial movement is not an inner state, and a label given by an
  onlooker is not what the person felt.
- Lie detection, or inferring intent, truthfulness, personality, or mental health.
- Populations it was not judged on: children, people with facial differences or paralysis,
  occluded faces, strong profile views. The web photos are mostly adults from news and film.
"""


def write(f: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "model_card.md", out_dir / "model_card.json"
    md.write_text(model_card(f))
    js.write_text(json.dumps(f, indent=2) + "\n")
    return md, js

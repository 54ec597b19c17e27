"""Extract MediaPipe's canonical face (468 vertices, cm) and its Procrustes landmark weights
from geometry_pipeline_metadata_landmarks.binarypb in the pinned face_landmarker.task.

The file is a serialised GeometryPipelineMetadata protocol buffer (MediaPipe's
tasks/cc/vision/face_geometry/proto/geometry_pipeline_metadata.proto and mesh_3d.proto). The
mediapipe wheel ships no Python bindings for it, so the message types are declared here from
those .proto definitions and parsed with the protobuf library.

    python scripts/extract_canonical_face.py [--task PATH] [--out vision/model_files/canonical_face.npz]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parents[1]
F = descriptor_pb2.FieldDescriptorProto


def _message_class():
    fdp = descriptor_pb2.FileDescriptorProto(name="facestream_geometry.proto", package="fs", syntax="proto2")

    def msg(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("WeightedLandmarkRef", [("landmark_id", 1, F.TYPE_UINT32, opt, None),
                                ("weight", 2, F.TYPE_FLOAT, opt, None)])
    msg("Mesh3d", [("vertex_type", 1, F.TYPE_INT32, opt, None),
                   ("primitive_type", 2, F.TYPE_INT32, opt, None),
                   ("vertex_buffer", 3, F.TYPE_FLOAT, rep, None),
                   ("index_buffer", 4, F.TYPE_UINT32, rep, None)])
    msg("GeometryPipelineMetadata", [("canonical_mesh", 1, F.TYPE_MESSAGE, opt, ".fs.Mesh3d"),
                                     ("procrustes_landmark_basis", 2, F.TYPE_MESSAGE, rep,
                                      ".fs.WeightedLandmarkRef"),
                                     ("input_source", 3, F.TYPE_INT32, opt, None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fs.GeometryPipelineMetadata"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "vision/model_files/canonical_face.npz")
    args = ap.parse_args()
    if args.task is None:
        from infra import assets

        args.task = assets.landmarker_model()
    with zipfile.ZipFile(args.task) as zf:
        raw = zf.read("geometry_pipeline_metadata_landmarks.binarypb")
    meta = _message_class().FromString(raw)
    vb = np.array(meta.canonical_mesh.vertex_buffer, dtype=np.float32).reshape(-1, 5)  # x y z u v
    if vb.shape[0] != 468:
        raise SystemExit(f"expected 468 canonical vertices, found {vb.shape[0]}")
    ids = np.array([r.landmark_id for r in meta.procrustes_landmark_basis], dtype=np.int64)
    weights = np.array([r.weight for r in meta.procrustes_landmark_basis], dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, vertices=vb[:, :3], procrustes_ids=ids, procrustes_weights=weights,
             source_sha256=np.array(hashlib.sha256(args.task.read_bytes()).hexdigest()))
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out}: {vb.shape[0]} vertices, {len(ids)} weighted Procrustes landmarks, "
          f"sha256 {hashlib.sha256(buf.getvalue()).hexdigest()}")


if __name__ == "__main__":
    main()

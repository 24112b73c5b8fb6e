#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/) from the repository's fixtures,
examples and policies. Run from anywhere: python3 fuzz/make-seeds.py (needs PyYAML for the object fixtures).

libFuzzer grows its own corpus in fuzz/corpus/<target>/ (not committed); these seeds are read beside it.
"""

import hashlib
import json
import pathlib
import re
import shutil

import yaml

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
SEEDS = FUZZ / "seeds"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def review_of(obj, operation="CREATE", old=None):
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": group, "version": version, "kind": obj.get("kind", "")},
            "name": obj.get("metadata", {}).get("name"),
            "namespace": obj.get("metadata", {}).get("namespace", "team-a"),
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
        },
    }


def admission_review():
    for path in sorted((REPO / "testdata/fixtures/reviews").glob("*.json")):
        write("admission_review", path.read_bytes())
    for path in sorted((REPO / "testdata/fixtures/objects").glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        write("admission_review", json.dumps(review_of(obj)))
        write("admission_review", json.dumps(review_of(obj, "UPDATE", obj)))
    # The envelope's error cases and the other kinds.
    for text in [
        "{}",
        "[]",
        '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
        '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE"}}',
        '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"flink.apache.org","version":"v1beta1","kind":"FlinkDeployment"},"operation":"DELETE"}}',
        '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"beamstack.dev","version":"v1alpha1","kind":"Tenant"},"operation":"CREATE","object":{"spec":{"namespaces":["a"],"budget":{"cpu":"1"}}}}}',
    ]:
        write("admission_review", text)


def admission_mutate():
    # Input is read by `arbitrary`: fixture (u8), update (bool), team label (bool), then the edits.
    for fixture in range(8):
        for update in (0, 1):
            write("admission_mutate", bytes([fixture, update, 1]))
        write("admission_mutate", bytes([fixture, 0, 0]))


def beam_yaml():
    for path in sorted((REPO / "examples/beam").rglob("*.yaml")):
        write("beam_yaml", path.read_bytes())


def policy():
    expressions = set()
    for path in sorted((REPO / "policies").glob("*.yaml")):
        text = path.read_text()
        write("policy", b"\x00" + text.encode())
        for document in yaml.safe_load_all(text):
            if not isinstance(document, dict):
                continue
            spec = document.get("spec") or {}
            for key in ("validations", "variables", "matchConditions", "mutations"):
                for item in spec.get(key) or []:
                    for field in ("expression", "messageExpression"):
                        if isinstance(item.get(field), str):
                            expressions.add(item[field])
    # The mode byte: low 2 bits non-zero (expression mode), bits 2-3 the action, bits 4-6 the slot, bit 7 Ignore.
    for index, expression in enumerate(sorted(expressions)):
        mode = 0x01 | ((index % 6) << 4)
        write("policy", bytes([mode]) + expression.encode())
    write("policy", bytes([0x51]) + b"spec.job.parallelism\nobject.spec.job.parallelism + 1")
    write("policy", bytes([0x51]) + b"runnerSpec.executor.instances\n3")


def main():
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    admission_review()
    admission_mutate()
    beam_yaml()
    policy()
    total = sum(path.stat().st_size for path in SEEDS.rglob("*") if path.is_file())
    count = sum(1 for path in SEEDS.rglob("*") if path.is_file())
    print(f"{count} seeds, {total // 1024} KiB in {SEEDS}")


if __name__ == "__main__":
    main()

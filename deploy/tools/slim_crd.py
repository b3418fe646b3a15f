"""Reduces an operator's CustomResourceDefinition to what validation needs: the group, names,
scope and each served version's openAPIV3Schema, without descriptions (k8s/crds/README.md
says where each file came from). Usage: slim_crd.py IN.yaml OUT.yaml"""

import sys

import yaml


def slim_schema(node):
    """Drops `description` from a schema node and every schema below it. A field that is
    itself called `description` (a key of `properties`) is kept."""
    if isinstance(node, list):
        return [slim_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            out[key] = {name: slim_schema(sub) for name, sub in value.items()}
        else:
            out[key] = slim_schema(value)
    return out


def main(src, dst):
    with open(src) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    out = []
    for crd in docs:
        assert crd["kind"] == "CustomResourceDefinition", src
        spec = crd["spec"]
        out.append({
            "apiVersion": crd["apiVersion"],
            "kind": crd["kind"],
            "metadata": {"name": crd["metadata"]["name"]},
            "spec": {
                "group": spec["group"],
                "names": spec["names"],
                "scope": spec["scope"],
                "versions": [
                    {
                        "name": v["name"],
                        "served": v.get("served", True),
                        "storage": v.get("storage", False),
                        "schema": {"openAPIV3Schema": slim_schema(v["schema"]["openAPIV3Schema"])},
                    }
                    for v in spec["versions"]
                ],
            },
        })
    with open(dst, "w") as f:
        yaml.safe_dump_all(out, f, sort_keys=False, width=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

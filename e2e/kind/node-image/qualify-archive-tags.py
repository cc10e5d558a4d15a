#!/usr/bin/env python3
"""qualify-archive-tags.py SRC DST: rewrite a `docker save` archive for kind's node-image builder.

kind compares the image names it wants (docker.io/kindest/..., registry.k8s.io/...)
verbatim with the tags it finds in the archives of kubernetes/server/bin, and reads only
the first of `manifest.json` / `repositories` it meets (from manifest.json only entry 0).
So: fully qualified tags everywhere, and `repositories` (every repository and tag) first.
"""
import io
import json
import sys
import tarfile


def qualified(tag):
    first = tag.split("/")[0]
    if "/" in tag and ("." in first or ":" in first or first == "localhost"):
        return tag
    return ("docker.io/" if "/" in tag else "docker.io/library/") + tag


def main(src, dst):
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        members = sorted(tin.getmembers(), key=lambda m: m.name != "repositories")
        for m in members:
            f = tin.extractfile(m) if m.isfile() else None
            if m.name == "manifest.json":
                data = json.load(f)
                for entry in data:
                    entry["RepoTags"] = [qualified(t) for t in entry.get("RepoTags") or []]
            elif m.name == "repositories":
                data = {qualified(k): v for k, v in json.load(f).items()}
            else:
                tout.addfile(m, f)
                continue
            body = json.dumps(data).encode()
            m.size = len(body)
            tout.addfile(m, io.BytesIO(body))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: qualify-archive-tags.py SRC DST")
    main(sys.argv[1], sys.argv[2])

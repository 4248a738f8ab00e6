"""Push the objects of every output of the given stages, ``cache: false`` ones included, to the
default DVC remote: ``python -m pipeline.cluster.push_outputs train@<run> ...``.

Why: ``dvc push --run-cache`` sends the run-cache entries, and ``dvc push`` the objects of cached
outputs only. A run-cache entry lists *every* output, and restoring it (``dvc repro --pull``
elsewhere) fetches every output's object, the git-tracked metrics.json and epochs.csv too. DVC
3.67 commits those to the local cache when it saves the entry but never pushes them, so without
this step the fan-in finds them missing and trains the stage again.
"""

from __future__ import annotations

import sys


def push_stage_outputs(targets: list[str], repo_root: str = ".") -> int:
    from dvc.repo import Repo

    with Repo(repo_root) as repo:
        infos = {
            out.hash_info
            for target in targets
            for stage in repo.stage.collect(target)
            for out in stage.outs
            if out.hash_info and out.hash_info.value
        }
        missing = [str(h) for h in infos if not repo.cache.local.exists(h.value)]
        if missing:
            raise SystemExit(f"error: not in the local cache, cannot push: {', '.join(missing)}")
        result = repo.cloud.push(infos)
    print(
        f"pushed {len(result.transferred)} of {len(infos)} output object(s) of {', '.join(targets)}"
        f" ({len(result.failed)} failed)"
    )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(push_stage_outputs(sys.argv[1:]))

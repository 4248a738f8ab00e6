#!/usr/bin/env bash
# Bring the upstream sources of the legacy-torch image into its build context, each at the commit
# that sources.lock pins: sources/<name>/ holds the tree (no .git) and sources/<name>/.commit its
# hash. A tree already at its pin is kept, so the script is cheap to rerun.
#
#   fetch-sources.sh [--mirror DIR] [DEST]     DEST: where the trees go (sources/ beside this script)
#
# Without --mirror it fetches each commit from GitHub. Offline, --mirror DIR reads local git
# repositories instead (bare or not, any clone that holds the pinned commit), found as
# DIR/<owner>+<name>, DIR/<owner>+<name>/repo or DIR/<owner>/<name>, e.g. made elsewhere with
#   git clone --mirror https://github.com/torch/torch7 DIR/torch+torch7
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOCK=${SOURCES_LOCK:-$HERE/sources.lock}  # another lock: for tests
mirror=""
dest=$HERE/sources

die() { echo "fetch-sources: error: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --mirror) [[ $# -ge 2 ]] || die "--mirror needs a directory"; mirror=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (usage: fetch-sources.sh [--mirror DIR] [DEST])" ;;
    *) dest=$1; shift ;;
  esac
done
[[ -z "$mirror" || -d "$mirror" ]] || die "no mirror directory $mirror"

# pins: name repository commit ref
pins() { grep -v -E '^[[:space:]]*(#|$)' "$LOCK"; }

has_commit() { git -C "$1" cat-file -e "$2^{commit}" 2>/dev/null; }

mirror_repo() {  # a local repository holding the commit, or nothing
  local repo=$1 commit=$2 dir
  for dir in "$mirror/${repo/\//+}" "$mirror/${repo/\//+}/repo" "$mirror/$repo"; do
    if [[ -d "$dir" ]] && has_commit "$dir" "$commit"; then echo "$dir"; return 0; fi
  done
}

github_repo() {  # a scratch repository with the commit fetched from GitHub
  local repo=$1 commit=$2 ref=$3 dir
  dir=$(mktemp -d "$dest/.git-XXXXXX")
  git -C "$dir" init --quiet --bare
  # GitHub serves a commit by hash; the ref is the fallback for servers that do not
  git -C "$dir" fetch --quiet --depth 1 "https://github.com/$repo" "$commit" 2>/dev/null ||
    git -C "$dir" fetch --quiet "https://github.com/$repo" "+$ref:refs/pinned" ||
    die "cannot fetch $repo at $commit (offline? use --mirror DIR)"
  has_commit "$dir" "$commit" || die "$repo: $ref does not hold $commit"
  echo "$dir"
}

fetch_one() {
  local name=$1 repo=$2 commit=$3 ref=$4 out=$dest/$1 src
  [[ "$commit" =~ ^[0-9a-f]{40}$ ]] || die "sources.lock: $name's commit '$commit' is not a full hash"
  if [[ "$(cat "$out/.commit" 2>/dev/null)" == "$commit" ]]; then return 0; fi
  if [[ -n "$mirror" ]]; then
    src=$(mirror_repo "$repo" "$commit")
    [[ -n "$src" ]] || die "no repository holding $repo $commit under $mirror"
  else
    src=$(github_repo "$repo" "$commit" "$ref")
  fi
  rm -rf "$out.part" && mkdir -p "$out.part"
  git -C "$src" archive --format=tar "$commit" | tar -x -C "$out.part"
  echo "$commit" > "$out.part/.commit"
  rm -rf "$out" && mv "$out.part" "$out"
  [[ -n "$mirror" ]] || rm -rf "$src"
  echo "fetch-sources: $name: $repo at $commit"
}

mkdir -p "$dest"
while read -r name repo commit ref; do
  fetch_one "$name" "$repo" "$commit" "$ref"
done < <(pins)
echo "fetch-sources: all $(pins | wc -l) sources at their pins in $dest"

#!/usr/bin/env bash
# Build a CPU-only Torch7 (torch7, nn, nngraph and what they and the SCRNN code need) on Debian 12's
# LuaJIT, from the trees that fetch-sources.sh put at their sources.lock pins. The image runs it;
# it runs natively too (no root needed when PREFIX is writable):
#
#   build-torch7.sh [--prefix DIR] [--sources DIR] [--jobs N]
#     --prefix   install tree (/opt/torch); DIR/bin/th is the interpreter, usable without any setup
#     --sources  the fetched trees (sources/ beside this script)
#     --jobs     parallel compile jobs (1)
#
# Debian 12 packages it needs: build-essential cmake pkg-config luajit libluajit-5.1-dev
# libopenblas-dev libreadline-dev lua-penlight lua-filesystem lua-moses.
#
# Each package is configured and installed with the CMake variables of its upstream rockspec (what
# luarocks would pass), against a small LuaJIT tree in PREFIX whose bin/ and include/ point at
# Debian's LuaJIT. patches/<name>-*.patch are applied to package <name> first: a modern compiler
# needs them, and each file's first line says why.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=/opt/torch
SOURCES=$HERE/sources
JOBS=1
# build order: each after what it needs (rockspec dependencies)
PACKAGES=(cwrap paths torch7 sys xlua graph nn nngraph trepl)

die() { echo "build-torch7: error: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --prefix|--sources|--jobs)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      case "$1" in --prefix) PREFIX=$2 ;; --sources) SOURCES=$2 ;; --jobs) JOBS=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (usage: build-torch7.sh [--prefix DIR] [--sources DIR] [--jobs N])" ;;
  esac
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer, not '$JOBS'"
mkdir -p "$PREFIX" && PREFIX=$(cd "$PREFIX" && pwd)

pinned_commit() {  # the sources.lock commit of package $1
  awk -v n="$1" '$1 == n { print $3 }' "$HERE/sources.lock"
}

check_sources() {
  local name want have
  for name in "${PACKAGES[@]}"; do
    want=$(pinned_commit "$name")
    [[ -n "$want" ]] || die "sources.lock has no pin for $name"
    have=$(cat "$SOURCES/$name/.commit" 2>/dev/null) ||
      die "no $SOURCES/$name/.commit: run fetch-sources.sh first (see docs/legacy.md)"
    [[ "$have" == "$want" ]] || die "$SOURCES/$name is at $have, not its pin $want: rerun fetch-sources.sh"
  done
}

luajit_tree() {  # PREFIX/bin/luajit and PREFIX/include/*.h: Debian's LuaJIT seen as a Lua prefix
  local incdir
  command -v luajit >/dev/null || die "no luajit on PATH: apt-get install luajit libluajit-5.1-dev"
  incdir=$(pkg-config --variable=includedir luajit) || die "pkg-config finds no luajit: apt-get install libluajit-5.1-dev"
  mkdir -p "$PREFIX/bin" "$PREFIX/include" "$PREFIX/lib"
  ln -sfn "$(command -v luajit)" "$PREFIX/bin/luajit"
  ln -sfn "$incdir"/*.h* "$PREFIX/include/"
}

cmake_variables() {  # the union of what the packages' rockspecs pass to cmake
  # LUALIB stays unset: the modules take the Lua API from the running luajit, as on Debian's own
  # Lua modules, so that no second copy of the VM is ever loaded
  echo -DCMAKE_BUILD_TYPE=Release \
       -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_PREFIX_PATH="$PREFIX" \
       -DLUA="$PREFIX/bin/luajit" -DLUA_BINDIR="$PREFIX/bin" -DLUA_INCDIR="$PREFIX/include" \
       -DLUA_LIBDIR="$PREFIX/lib" -DLUADIR="$PREFIX/share/lua/5.1" -DLIBDIR="$PREFIX/lib/lua/5.1"
}

apply_patches() {
  local name=$1 work=$2 patch
  for patch in "$HERE/patches/$name"-*.patch; do
    [[ -e "$patch" ]] || continue
    echo "build-torch7: $name: applying $(basename "$patch"): $(head -n 1 "$patch")"
    patch -d "$work" -p1 --forward --quiet < "$patch" || die "$(basename "$patch") does not apply to $name"
  done
}

build_one() {
  local name=$1 work
  work=$(mktemp -d "${TMPDIR:-/tmp}/build-torch7-$name.XXXXXX")
  cp -a "$SOURCES/$name/." "$work/"
  apply_patches "$name" "$work"
  echo "build-torch7: $name ($(cat "$work/.commit"))"
  # shellcheck disable=SC2046  # one word per variable
  cmake -S "$work" -B "$work/build" $(cmake_variables) >"$work/configure.log" 2>&1 ||
    { tail -n 30 "$work/configure.log" >&2; die "$name: cmake failed (full log: $work/configure.log)"; }
  make -C "$work/build" -j "$JOBS" >"$work/make.log" 2>&1 ||
    { tail -n 40 "$work/make.log" >&2; die "$name: make failed (full log: $work/make.log)"; }
  make -C "$work/build" install >"$work/install.log" 2>&1 ||
    { tail -n 30 "$work/install.log" >&2; die "$name: make install failed"; }
  rm -rf "$work"
}

# The Lua search paths of the tree: packages built without luarocks put their Lua files under
# PREFIX/lua and their C modules in PREFIX/lib, torch7 and paths under share/lua/5.1 and
# lib/lua/5.1. The working directory comes first, so that the code's own modules (rnn.lua,
# util.lua, ...) win over installed ones of the same name (SCRNNs#5). The trailing ';;' keeps
# LuaJIT's defaults, where Debian's penlight, lfs and moses are.
lua_path() { echo "./?.lua;./?/init.lua;$1/share/lua/5.1/?.lua;$1/share/lua/5.1/?/init.lua;$1/lua/?.lua;$1/lua/?/init.lua"; }
lua_cpath() { echo "$1/lib/lua/5.1/?.so;$1/lib/?.so"; }

write_th() {  # trepl's th behind a wrapper that sets the tree's paths: no activation step
  mv -f "$PREFIX/bin/th" "$PREFIX/bin/th.lua"
  cat > "$PREFIX/bin/th" <<EOF
#!/bin/sh
# Torch7's th (trepl) with the Lua paths of $PREFIX (written by build-torch7.sh)
export LUA_PATH='$(lua_path "$PREFIX");'"\${LUA_PATH:-;}"
export LUA_CPATH='$(lua_cpath "$PREFIX");'"\${LUA_CPATH:-;}"
export LD_LIBRARY_PATH='$PREFIX/lib'"\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec '$PREFIX/bin/luajit' '$PREFIX/bin/th.lua' "\$@"
EOF
  chmod 0755 "$PREFIX/bin/th"
}

smoke_test() {  # every module the SCRNN code loads (legacy notes: dependencies)
  "$PREFIX/bin/th" -e "require 'torch'; require 'nn'; require 'nngraph'; require 'xlua'; require 'sys';
    require 'paths'; require 'pl.import_into'; local x = torch.randn(3, 4); assert(nn.Linear(4, 2):forward(x):size(2) == 2);
    print('torch7 ok: ' .. torch.getdefaulttensortype())" || die "the smoke test failed"
}

check_sources
luajit_tree
# the build runs Lua too (torch7's cwrap step needs cwrap): it sees the tree as th will
export LUA_PATH="$(lua_path "$PREFIX");;" LUA_CPATH="$(lua_cpath "$PREFIX");;"
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for name in "${PACKAGES[@]}"; do build_one "$name"; done
write_th
smoke_test
echo "build-torch7: done; the interpreter is $PREFIX/bin/th"

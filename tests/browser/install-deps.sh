#!/bin/sh
# install-deps.sh SRC DEST - installs the browser tests' npm dependencies
# (SRC/package.json, pinned by SRC/package-lock.json) into DEST with
# `npm ci`, unless DEST already holds exactly that lock's install. npm's
# cache makes every install after the first one work offline.
# Run by ctest as the fixture browser.deps; fails (does not skip) when a
# tool is missing: `make deps` installs them all on Debian 12.
set -eu
src=$1
dest=$2
fail() {
    echo "browser tests: $*" >&2
    exit 1
}
command -v node >/dev/null 2>&1 || fail "node not found (make deps installs Debian's nodejs and npm)"
command -v npm >/dev/null 2>&1 || fail "npm not found (make deps installs it)"
[ -x "${WSGATE_CHROMIUM:-/usr/bin/chromium}" ] || fail "chromium not found (make deps installs Debian's chromium)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
    fail "node $(node --version) is too old: playwright-core needs 18 or later"
mkdir -p "$dest"
if cmp -s "$src/package-lock.json" "$dest/package-lock.json" &&
    [ -f "$dest/node_modules/.package-lock.json" ] &&
    [ -d "$dest/node_modules/playwright-core" ]; then
    echo "browser tests: npm dependencies up to date in $dest"
    exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
echo "browser tests: node $(node --version), $(ls node_modules | tr '\n' ' ')in $dest"

#!/usr/bin/env bash
# Builds Drover's web app (web/: TypeScript, Preact, uPlot, bundled with Vite) into web/dist,
# the folder droverd serves with --web-root. Packages come from the npm registry exactly as
# web/package-lock.json pins them (`npm ci`); the built page loads nothing from elsewhere.
# Needs Node.js 18 or later and npm (deploy/install-deps.sh installs Debian's when none is
# there). `npm ci` runs again only when the lock file changed.
# Usage: deploy/build-web.sh [--test]   (--test: also run the unit tests, Vitest)
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "build-web: node and npm are needed; run deploy/install-deps.sh (Debian's nodejs and npm)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 18)); then
  echo "build-web: Node.js $(node --version) is too old; Vite needs 18 or later" >&2
  exit 1
fi

stamp=node_modules/.drover-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
npm run build
if [[ ${1:-} == --test ]]; then
  npm test
fi
echo "build-web: built $(pwd)/dist"

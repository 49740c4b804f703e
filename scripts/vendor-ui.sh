#!/usr/bin/env bash
# Vendors the staff pages' third-party front-end files from npm, so the hub serves them itself (no CDN):
#   service/ui/static/nhsuk/  the compiled NHS.UK frontend (css, js, images) and its licence
#   tests/ui/vendor/          axe-core (injected by the browser tests) and its licence
# The CSS's absolute /assets/ paths become relative, and its web-font rules (fetched from assets.nhs.uk)
# are removed: hospital networks are closed, and the stylesheet falls back to Arial as designed.
set -euo pipefail
cd "$(dirname "$0")/.."
NHSUK_VERSION="${NHSUK_VERSION:-10.6.1}"
AXE_VERSION="${AXE_VERSION:-4.14.1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
	"nhsuk-frontend@$NHSUK_VERSION" "axe-core@$AXE_VERSION" >/dev/null)
src="$work/node_modules/nhsuk-frontend/dist/nhsuk"
dest=service/ui/static/nhsuk
rm -rf "$dest" && mkdir -p "$dest/assets/images"
sed -e 's#url(/assets/#url(assets/#g' -e 's#@font-face{[^}]*assets\.nhs\.uk[^}]*}##g' \
	"$src/nhsuk-frontend.min.css" >"$dest/nhsuk-frontend.min.css"
cp "$src/nhsuk-frontend.min.js" "$dest/nhsuk-frontend.min.js"
cp "$src"/assets/images/*.svg "$src"/assets/images/favicon.ico "$dest/assets/images/"
cat >"$dest/LICENCE" <<LICENCE
nhsuk-frontend $NHSUK_VERSION (https://github.com/nhsuk/nhsuk-frontend), vendored by scripts/vendor-ui.sh.
The npm package declares "license": "MIT"; the repository's LICENSE follows.

MIT License

Copyright (c) 2019 NHS.UK

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
LICENCE
mkdir -p tests/ui/vendor
cp "$work/node_modules/axe-core/axe.min.js" tests/ui/vendor/axe.min.js
cp "$work/node_modules/axe-core/LICENSE" tests/ui/vendor/axe-core.LICENSE
echo "vendored nhsuk-frontend $NHSUK_VERSION and axe-core $AXE_VERSION"

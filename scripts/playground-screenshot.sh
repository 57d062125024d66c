#!/usr/bin/env bash
# Loads the `dlm serve` playground in headless chromium, submits a completion (the page's
# `autorun` query parameter clicks Generate), lets the stream finish, and writes a
# screenshot and the DOM after streaming:
#   scripts/playground-screenshot.sh http://127.0.0.1:8000 out.png   → out.png, out.html
# Exit 3 (with a message) when chromium is not installed (Debian: apt-get install chromium).
set -euo pipefail
url=${1:?usage: $0 SERVER_URL OUT.png}
png=${2:?usage: $0 SERVER_URL OUT.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "chromium is not installed (apt-get install chromium); playground check skipped"
  exit 3
fi
page="$url/?autorun=1&max_tokens=12&steps=8&prompt=the%20capital%20of%20france%20is"
# Virtual time runs on while the page is idle and waits while the stream is open, so the
# budget is reached only after the completion finished.
flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars
       --window-size=1000,700 --virtual-time-budget=20000 --user-data-dir="$(mktemp -d)")
"$browser" "${flags[@]}" --dump-dom "$page" > "${png%.png}.html" 2>/dev/null
"$browser" "${flags[@]}" --screenshot="$png" "$page" >/dev/null 2>&1
echo "wrote $png and ${png%.png}.html"

#!/usr/bin/env bash
# Loads the `dlm serve` playground in headless chromium, submits a completion (the page's
# `autorun` query parameter clicks Generate), waits until the stream has finished (the
# page's <body data-state> is "done"), and writes a screenshot and the DOM of that page:
#   scripts/playground-screenshot.sh http://127.0.0.1:8000 out.png   → out.png, out.html
# Exit 3 (with a message) when chromium (Debian: apt-get install chromium) or python3 is
# not installed; exit 1 when the stream did not finish (state "error", or still streaming
# after PLAYGROUND_TIMEOUT seconds, default 120; the DOM and screenshot are written anyway).
#
# The browser is driven over the DevTools protocol by scripts/playground_cdp.py, which
# polls the page in real time. Chromium's own --dump-dom/--screenshot do not wait for a
# streamed response: they write the page once it has loaded, and --virtual-time-budget
# does not hold back for a streamed fetch body, so they caught the page after the first
# denoising step at best (data-state="streaming").
set -euo pipefail
url=${1:?usage: $0 SERVER_URL OUT.png}
png=${2:?usage: $0 SERVER_URL OUT.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "chromium is not installed (apt-get install chromium); playground check skipped"
  exit 3
fi
if ! command -v python3 >/dev/null; then
  echo "python3 is not installed (it drives chromium); playground check skipped"
  exit 3
fi
page="$url/?autorun=1&max_tokens=12&steps=8&prompt=the%20capital%20of%20france%20is"
python3 "$(dirname "$0")/playground_cdp.py" "$browser" "$page" "$png" "${png%.png}.html" \
  "${PLAYGROUND_TIMEOUT:-120}"
echo "wrote $png and ${png%.png}.html"

#!/usr/bin/env python3
"""Drives headless chromium over the DevTools protocol (the `--remote-debugging-pipe`
transport: NUL-terminated JSON on fds 3 and 4, so only the standard library is needed) to
load the `dlm serve` playground, wait in real time until the page's
`<body data-state>` leaves "streaming" (`done` or `error`), and write the DOM and a
screenshot of that same page.

Chromium's own `--dump-dom`/`--screenshot` cannot do this: they write the page as soon as
it has loaded (plus `--virtual-time-budget` of virtual time, which does not wait for a
streamed fetch body), i.e. after the first denoising step at best.

    python3 scripts/playground_cdp.py BROWSER PAGE_URL OUT.png OUT.html [TIMEOUT_S]

Exits 0 when the page reached `done`, 1 otherwise (the DOM and screenshot are written
either way, when the browser got that far).
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, binary, profile):
        cmd_r, self._cmd_w = os.pipe()  # we write commands, chromium reads fd 3
        self._resp_r, resp_w = os.pipe()  # chromium writes fd 4, we read responses

        def fds():  # in the child: the pipe ends become fds 3 and 4 (dup2 clears CLOEXEC)
            hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4
            hi_w = fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--window-size=1000,700", f"--user-data-dir={profile}",
                 "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen([binary, *flags], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=fds, close_fds=False)
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._next = 0

    def _message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._resp_r], [], [], left)[0]:
                raise TimeoutError("no answer from the browser")
            chunk = os.read(self._resp_r, 1 << 20)
            if not chunk:
                raise EOFError("the browser closed its DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=30):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next:  # events and other answers are not needed
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, session, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return result["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._resp_r)


def main():
    binary, url, png, html = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
    profile = tempfile.mkdtemp(prefix="dlm-playground-")
    try:
        browser = Browser(binary, profile)
        try:
            return run(browser, url, png, html, timeout)
        finally:
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)  # a helper may still be exiting


def run(browser, url, png, html, timeout):
    page = next(t for t in browser.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
    session = browser.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
    nav = browser.call("Page.navigate", {"url": url}, session)
    if nav.get("errorText"):
        print(f"could not open {url}: {nav['errorText']}")
        return 1
    # Poll the page's own state in real time: the stream takes as long as the model does.
    start = time.monotonic()
    state = None
    while time.monotonic() - start < timeout:
        state = browser.evaluate(session, "location.href !== 'about:blank' && document.body ? document.body.dataset.state : null")
        if state in ("done", "error"):
            break
        time.sleep(0.1)
    dom = browser.evaluate(session, "document.documentElement.outerHTML")
    with open(html, "w", encoding="utf-8") as f:
        f.write(dom + "\n")
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    if state != "done":
        status = browser.evaluate(session, "(document.getElementById('status') || {}).textContent")
        error = browser.evaluate(session, "(document.getElementById('error') || {}).textContent")
        print(f"the page is {state!r} after {time.monotonic() - start:.1f} s (status {status!r}, error {error!r})")
        return 1
    print(f"streamed in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

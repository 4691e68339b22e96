//! Probes: what a client does, as one command line, answered as one JSON line.
//! - `http <addr> <url>`: an origin-form GET of `url` sent straight to `addr` (no proxy
//!   settings: iptables must capture it); answers `{"status", "body", "headers"}`.
//! - `tcp <addr>`: connects, reads the greeting line, sends `ping`, reads it back; answers
//!   `{"greeting", "echo"}`.
//!
//! Failures answer `{"error": …}`. [`Helper`] runs probes in another process (another
//! network namespace or another uid) that answers lines prefixed with [`PREFIX`].

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mast_test_support::HttpRequest;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

/// Marks the lines a helper answers (libtest prints its own lines too).
pub const PREFIX: &str = "MAST-CAPTURE ";
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// Runs one probe command.
pub async fn run(command: &str) -> Value {
    let parts: Vec<&str> = command.split_whitespace().collect();
    let result = match parts.as_slice() {
        ["http", addr, url] => http(addr, url).await,
        ["tcp", addr] => tcp(addr).await,
        _ => Err(format!("unknown probe {command:?}")),
    };
    result.unwrap_or_else(|e| json!({ "error": e }))
}

fn parse(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|e| format!("{addr}: {e}"))
}

async fn http(addr: &str, url: &str) -> Result<Value, String> {
    let r = HttpRequest::get(url)
        .timeout(PROBE_TIMEOUT)
        .direct(parse(addr)?)
        .await
        .map_err(|e| e.to_string())?;
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
        .collect();
    Ok(json!({ "status": r.status, "body": r.trimmed(), "headers": headers }))
}

async fn tcp(addr: &str) -> Result<Value, String> {
    let addr = parse(addr)?;
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut stream = AsyncBufReader::new(stream);
        let mut greeting = String::new();
        stream
            .read_line(&mut greeting)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .get_mut()
            .write_all(b"ping\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut echo = String::new();
        stream
            .read_line(&mut echo)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(json!({ "greeting": greeting.trim(), "echo": echo.trim() }))
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer from {addr} within {PROBE_TIMEOUT:?}"))?
}

/// Reads probe commands from stdin until it closes, answering each on stdout.
pub fn serve_stdin(runtime: &tokio::runtime::Runtime) {
    println!("{PREFIX}READY");
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        println!("{PREFIX}{}", runtime.block_on(run(&line)));
    }
}

/// A helper process answering probes.
pub struct Helper {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    /// Starts `command` (stdin/stdout piped) and waits for its `READY` line.
    pub fn start(name: &str, mut command: Command) -> Self {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} helper: {e}"));
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest's `test capture_helper ... ` may start the first line.
                if let Some(at) = line.find(PREFIX)
                    && send.send(line[at + PREFIX.len()..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        let helper = Self {
            name: name.to_owned(),
            child,
            stdin,
            lines,
        };
        let ready = helper.lines.recv_timeout(Duration::from_secs(20));
        assert_eq!(
            ready.as_deref(),
            Ok("READY"),
            "the {name} helper did not start"
        );
        helper
    }

    /// Runs one probe in the helper.
    pub fn ask(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").expect("helper stdin");
        let line = self
            .lines
            .recv_timeout(PROBE_TIMEOUT + Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the {} helper did not answer {command:?}: {e}", self.name));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

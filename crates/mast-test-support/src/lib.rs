//! Helpers every Mast end-to-end test uses: finding Envoy and workspace binaries, free
//! ports, temporary folders, a guard that kills a child process group when the test ends,
//! bounded polling, upstream servers that echo what they received ([`EchoServer`] for
//! HTTP/1.1 and h2c, [`TcpEchoServer`] for raw TCP), a small HTTP/1.1 client that can send
//! absolute-form requests through a sidecar's outbound listener ([`HttpRequest`]), and a
//! launcher for `mast-agent` that waits for the ports it reports ([`AgentProcess`]). For
//! tests of a proxy against the control plane: `mastd` as a process ([`MastdProcess`]) and a
//! client sidecar of either kind, Envoy (through `mast-agent`) or `mast-proxy`
//! ([`ProxyProcess`], [`ProxyOptions`], [`ProxyKind`]).
//!
//! Everything binds 127.0.0.1 on ports picked free at run time, and every wait is bounded.
//! The servers run on a small runtime of their own ([`background`]), so they keep answering
//! whatever the test's own thread is doing (blocking waits included); the client helpers are
//! `async` and run on the caller's runtime.

pub mod agent;
pub mod background;
pub mod client;
pub mod echo;
mod launch;
pub mod locate;
pub mod mastd;
pub mod process;
pub mod proxy;
pub mod tcp_echo;
pub mod temp;
pub mod wait;

pub use agent::{AgentError, AgentPorts, AgentProcess};
pub use client::{ClientError, HttpRequest, HttpResponse, http_get, http_get_direct};
pub use echo::{Behaviour, EchoServer, RecordedRequest};
pub use locate::{cargo_bin, envoy_binary, require_envoy, workspace_root};
pub use mastd::{MastdError, MastdOptions, MastdProcess};
pub use process::ProcessGuard;
pub use proxy::{ProxyError, ProxyKind, ProxyOptions, ProxyPorts, ProxyProcess};
pub use tcp_echo::TcpEchoServer;
pub use temp::TempDir;
pub use wait::{free_port, wait_for, wait_for_async};

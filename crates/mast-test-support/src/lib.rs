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
//! For protocol tests: an h2c client with gRPC calls ([`H2Client`]), a gRPC upstream
//! ([`GrpcServer`]), WebSocket echo ([`WsEchoServer`], [`WsClient`]), a scripted raw HTTP/1.1
//! upstream that resets, hangs or closes idle connections ([`RawHttpServer`]), streamed large
//! bodies ([`BulkServer`], [`upload_via_proxy`], [`download_via_proxy`]), a kept-alive
//! HTTP/1.1 client ([`KeepAliveClient`]) and a process's memory and listeners from `/proc`
//! ([`procfs`]).
//!
//! Everything binds 127.0.0.1 on ports picked free at run time, and every wait is bounded.
//! The servers run on a small runtime of their own ([`background`]), so they keep answering
//! whatever the test's own thread is doing (blocking waits included); the client helpers are
//! `async` and run on the caller's runtime.

pub mod agent;
pub mod background;
pub mod bulk;
pub mod client;
pub mod echo;
pub mod grpc;
pub mod h2c;
pub mod keepalive;
pub mod kube;
mod launch;
pub mod locate;
pub mod mastd;
pub mod process;
pub mod procfs;
pub mod proxy;
pub mod raw_http;
pub mod tcp_echo;
pub mod temp;
pub mod wait;
pub mod websocket;

pub use agent::{AgentError, AgentPorts, AgentProcess};
pub use bulk::{BulkServer, Transfer, download_via_proxy, upload_via_proxy};
pub use client::{ClientError, HttpRequest, HttpResponse, http_get, http_get_direct};
pub use echo::{Behaviour, EchoServer, RecordedRequest};
pub use grpc::{GrpcServer, split_messages};
pub use h2c::{GrpcReply, H2Client, H2Response};
pub use keepalive::KeepAliveClient;
pub use locate::{cargo_bin, envoy_binary, require_envoy, workspace_root};
pub use mastd::{MastdError, MastdOptions, MastdProcess};
pub use process::ProcessGuard;
pub use procfs::{Memory, pid_listening_on};
pub use proxy::{ProxyError, ProxyKind, ProxyOptions, ProxyPorts, ProxyProcess};
pub use raw_http::RawHttpServer;
pub use tcp_echo::TcpEchoServer;
pub use temp::TempDir;
pub use wait::{free_port, wait_for, wait_for_async};
pub use websocket::{WsClient, WsEchoServer, WsError, WsMessage};

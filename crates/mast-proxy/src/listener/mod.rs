//! Listeners (LDS): conversion ([`convert`]), the set of bound listeners and their accept
//! loops ([`manager`]), and per-connection dispatch ([`accept`]): original destination
//! (iptables capture hands 15001/15006 connections whose real destination is read with
//! `SO_ORIGINAL_DST`), the listener that serves it, filter-chain match, then the chain's HTTP
//! connection manager or TCP proxy. [`reserved`] keeps the sockets of ports the proxy picked
//! for itself until they are served.

pub mod accept;
pub mod chain_match;
pub mod convert;
pub mod inspect;
pub mod manager;
pub mod reserved;
#[cfg(test)]
mod tests;

pub use convert::{ChainMatch, Direction, FilterChain, ListenerConfig, NetworkFilter};
pub use manager::ListenerManager;
